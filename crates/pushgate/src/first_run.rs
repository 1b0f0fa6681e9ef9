//! pushgate with no settings file: everything it needs to serve on one machine comes from
//! built-in defaults and a data directory it keeps itself, as Prosody's mod_unified_push
//! keeps its own key.
//!
//! The data directory is `$PUSHGATE_DATA_DIR`, else systemd's `$STATE_DIRECTORY`, else
//! `./pushgate-data`. On first use it gets the SQLite database, a component secret and a
//! UnifiedPush endpoint key, each file readable by its owner only. The link is
//! `push.localhost` on 127.0.0.1:5347 and HTTP listens on 127.0.0.1:8080; environment
//! variables (`PUSHGATE_<SECTION>__<KEY>`) still override any of it.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use pushgate_core::settings::read_secret_file;

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "PUSHGATE_DATA_DIR";
/// What systemd's `StateDirectory=` sets (one or more paths, `:`-separated).
pub const STATE_DIRECTORY_ENV: &str = "STATE_DIRECTORY";
/// The data directory when neither variable says otherwise, relative to the working
/// directory.
pub const DEFAULT_DATA_DIR: &str = "pushgate-data";
/// The component JID of a first run: resolvable on the machine itself, nowhere else.
pub const FIRST_RUN_JID: &str = "push.localhost";
/// Where the XMPP server's component listener is expected.
pub const FIRST_RUN_COMPONENT_PORT: u16 = 5347;
/// Where the HTTP listener goes.
pub const FIRST_RUN_LISTEN: &str = "127.0.0.1:8080";

const COMPONENT_SECRET_FILE: &str = "component.secret";
const KEYS_FILE: &str = "up.keys";
const DATABASE_FILE: &str = "pushgate.db";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory or a file in it cannot be created or read.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file is there but holds nothing usable.
    #[error("{path} is empty; delete it to have a new one made")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The path cannot be written into a SQLite URL.
    #[error("data directory {path}: a path with `?`, `#` or `%` cannot name the SQLite file")]
    UnusablePath {
        /// The directory.
        path: PathBuf,
    },
}

/// Which variable (if any) chose the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirOrigin {
    /// `$PUSHGATE_DATA_DIR`.
    DataDirEnv,
    /// `$STATE_DIRECTORY` (systemd's `StateDirectory=`).
    StateDirectory,
    /// `./pushgate-data`.
    Default,
}

/// The data directory of a run without a settings file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    path: PathBuf,
    origin: DataDirOrigin,
}

/// What a first-run start uses, read from (or just made in) the data directory.
#[derive(Clone, Debug)]
pub struct FirstRun {
    /// The data directory.
    pub dir: DataDir,
    /// The component secret.
    pub component_secret: String,
    /// The UnifiedPush endpoint keys, newest first.
    pub endpoint_keys: Vec<String>,
    /// Whether the secret was made just now (so nobody has seen it yet).
    pub secret_is_new: bool,
}

impl DataDir {
    /// `$PUSHGATE_DATA_DIR`, else the first path of `$STATE_DIRECTORY`, else
    /// `./pushgate-data`.
    pub fn locate() -> Self {
        Self::from_env(
            std::env::var_os(DATA_DIR_ENV).map(PathBuf::from),
            std::env::var(STATE_DIRECTORY_ENV).ok(),
        )
    }

    fn from_env(data_dir: Option<PathBuf>, state_directory: Option<String>) -> Self {
        if let Some(path) = data_dir.filter(|path| !path.as_os_str().is_empty()) {
            return Self {
                path,
                origin: DataDirOrigin::DataDirEnv,
            };
        }
        if let Some(first) = state_directory
            .as_deref()
            .and_then(|dirs| dirs.split(':').find(|dir| !dir.is_empty()))
        {
            return Self {
                path: PathBuf::from(first),
                origin: DataDirOrigin::StateDirectory,
            };
        }
        Self {
            path: PathBuf::from(DEFAULT_DATA_DIR),
            origin: DataDirOrigin::Default,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which variable chose it.
    pub fn origin(&self) -> DataDirOrigin {
        self.origin
    }

    /// The file holding the component secret.
    pub fn component_secret_path(&self) -> PathBuf {
        self.path.join(COMPONENT_SECRET_FILE)
    }

    /// The SQLite URL of the database in the directory (created on first use).
    pub fn database_url(&self) -> Result<String, DataDirError> {
        let path = self.path.join(DATABASE_FILE);
        let text = path.to_string_lossy();
        if text.contains(['?', '#', '%']) {
            return Err(DataDirError::UnusablePath {
                path: self.path.clone(),
            });
        }
        Ok(format!("sqlite://{text}?mode=rwc"))
    }

    /// Creates the directory (owner only) and the secret and key files that are missing,
    /// then reads them.
    pub fn prepare(&self) -> Result<FirstRun, DataDirError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| self.io(&self.path, source))?;
        let secret_path = self.component_secret_path();
        let secret_is_new = self.create_once(&secret_path, &new_component_secret())?;
        let keys_path = self.path.join(KEYS_FILE);
        self.create_once(&keys_path, &new_endpoint_key())?;
        // Made here, empty (a new database to SQLite), so that it and the journal files SQLite
        // gives its permissions are the owner's only: the database holds push tokens.
        self.create_once(&self.path.join(DATABASE_FILE), "")?;

        let component_secret = self.read(&secret_path)?.trim().to_owned();
        if component_secret.is_empty() {
            return Err(DataDirError::Empty { path: secret_path });
        }
        let endpoint_keys: Vec<String> = self
            .read(&keys_path)?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoint_keys.is_empty() {
            return Err(DataDirError::Empty { path: keys_path });
        }
        Ok(FirstRun {
            dir: self.clone(),
            component_secret,
            endpoint_keys,
            secret_is_new,
        })
    }

    /// Writes `content` (with a line break; nothing when empty) to a new file readable by its
    /// owner only; false if it was there.
    /// `create_new`: two starts at once never overwrite each other's secret.
    fn create_once(&self, path: &Path, content: &str) -> Result<bool, DataDirError> {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                if !content.is_empty() {
                    file.write_all(format!("{content}\n").as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|source| self.io(path, source))?;
                }
                Ok(true)
            }
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(self.io(path, source)),
        }
    }

    fn read(&self, path: &Path) -> Result<String, DataDirError> {
        read_secret_file(path).map_err(|source| self.io(path, source))
    }

    fn io(&self, path: &Path, source: std::io::Error) -> DataDirError {
        DataDirError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl FirstRun {
    /// The settings of a first run, as a TOML document the loader reads in place of a file
    /// (the environment still overrides it).
    pub fn settings_toml(&self) -> Result<String, DataDirError> {
        let mut component = toml::Table::new();
        component.insert("jid".into(), FIRST_RUN_JID.into());
        component.insert("host".into(), "127.0.0.1".into());
        component.insert(
            "port".into(),
            toml::Value::Integer(FIRST_RUN_COMPONENT_PORT.into()),
        );
        component.insert("secret".into(), self.component_secret.as_str().into());
        let mut database = toml::Table::new();
        database.insert("url".into(), self.dir.database_url()?.into());
        let mut http = toml::Table::new();
        http.insert("listen".into(), FIRST_RUN_LISTEN.into());
        http.insert(
            "public_url".into(),
            format!("http://{FIRST_RUN_LISTEN}").into(),
        );
        let mut unified_push = toml::Table::new();
        unified_push.insert(
            "keys".into(),
            toml::Value::Array(
                self.endpoint_keys
                    .iter()
                    .map(|key| key.as_str().into())
                    .collect(),
            ),
        );
        let mut document = toml::Table::new();
        document.insert("component".into(), component.into());
        document.insert("database".into(), database.into());
        document.insert("http".into(), http.into());
        document.insert("unified_push".into(), unified_push.into());
        Ok(document.to_string())
    }
}

/// A component secret: 24 random bytes, URL-safe base64 (32 characters, nothing to quote in
/// Lua or YAML).
pub fn new_component_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// A UnifiedPush endpoint key as `[unified_push] keys` takes it: standard base64 of 32
/// random bytes.
pub fn new_endpoint_key() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

/// The XMPP servers' side of the link: the Prosody and ejabberd settings that accept
/// pushgate as component `jid` with `secret` on loopback port `port`.
pub fn server_snippets(jid: &str, secret: &str, port: u16) -> String {
    format!(
        r#"Prosody (/etc/prosody/conf.d/pushgate.cfg.lua, then `prosodyctl reload`):

    component_ports = {{ {port} }}
    component_interfaces = {{ "127.0.0.1" }}
    Component "{jid}"
        component_secret = "{secret}"

ejabberd (merge into /etc/ejabberd/ejabberd.yml, then `ejabberdctl reload_config`):

    listen:
      -
        port: {port}
        ip: "127.0.0.1"
        module: ejabberd_service
        hosts:
          {jid}:
            password: "{secret}"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_comes_from_the_variables_in_order() {
        let dir = DataDir::from_env(Some("/srv/pg".into()), Some("/var/lib/pushgate".into()));
        assert_eq!(dir.path(), Path::new("/srv/pg"));
        assert_eq!(dir.origin(), DataDirOrigin::DataDirEnv);
        let dir = DataDir::from_env(None, Some("/var/lib/pushgate:/var/lib/other".into()));
        assert_eq!(dir.path(), Path::new("/var/lib/pushgate"));
        assert_eq!(dir.origin(), DataDirOrigin::StateDirectory);
        let dir = DataDir::from_env(Some("".into()), None);
        assert_eq!(dir.path(), Path::new(DEFAULT_DATA_DIR));
        assert_eq!(dir.origin(), DataDirOrigin::Default);
    }

    #[test]
    fn secrets_are_made_once_owner_only_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::from_env(Some(temp.path().join("data")), None);
        let first = dir.prepare().expect("prepared");
        assert!(first.secret_is_new);
        assert_eq!(first.component_secret.len(), 32);
        assert_eq!(
            STANDARD
                .decode(&first.endpoint_keys[0])
                .expect("base64")
                .len(),
            32
        );
        for file in [COMPONENT_SECRET_FILE, KEYS_FILE, DATABASE_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = std::fs::metadata(dir.path())
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let again = dir.prepare().expect("prepared again");
        assert!(!again.secret_is_new);
        assert_eq!(again.component_secret, first.component_secret);
        assert_eq!(again.endpoint_keys, first.endpoint_keys);
    }

    #[test]
    fn an_emptied_secret_file_is_an_error_not_an_empty_secret() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::from_env(Some(temp.path().to_owned()), None);
        dir.prepare().expect("prepared");
        std::fs::write(temp.path().join(COMPONENT_SECRET_FILE), "\n").expect("emptied");
        assert!(matches!(dir.prepare(), Err(DataDirError::Empty { .. })));
    }

    #[test]
    fn paths_a_sqlite_url_cannot_hold_are_refused() {
        let dir = DataDir::from_env(Some("/srv/what?".into()), None);
        assert!(matches!(
            dir.database_url(),
            Err(DataDirError::UnusablePath { .. })
        ));
        let dir = DataDir::from_env(Some("/var/lib/pushgate".into()), None);
        assert_eq!(
            dir.database_url().expect("url"),
            "sqlite:///var/lib/pushgate/pushgate.db?mode=rwc"
        );
    }
}
