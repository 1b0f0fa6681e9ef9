//! `pushgate init`: writes a complete, commented settings file with a fresh component secret
//! and UnifiedPush key, readable by its owner only, and prints what the XMPP server needs.
//!
//! The file is the commented example (`config/pushgate.toml`) with its values filled in, so
//! it documents every key just as the example does. What it writes is checked as
//! `check-config` checks it before it is written, and an existing file is never overwritten.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pushgate_xmpp::RoleName;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::first_run::{new_component_secret, new_endpoint_key, server_snippets};
use crate::settings::{DEFAULT_FILE, Settings, SettingsError};

/// The example the file is made from.
const TEMPLATE: &str = include_str!("../../../../config/pushgate.toml");

/// The arguments of `init`.
#[derive(Clone, Debug, clap::Args)]
pub struct InitArgs {
    /// The component's JID, a subdomain of your XMPP server (`push.example.org`).
    #[arg(long, default_value = crate::first_run::FIRST_RUN_JID)]
    pub jid: String,
    /// The public base URL of the HTTP listener, as apps reach it (endpoints are
    /// `{public_url}/push/{token}`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// The database URL: `sqlite://FILE?mode=rwc`, `postgres://…` or `mysql://…`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "sqlite://pushgate.db?mode=rwc"
    )]
    pub database: String,
    /// The roles the component serves, comma-separated: `app_server` (XEP-0357, p2) and
    /// `unified_push` (up).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_role,
        default_value = "app_server,unified_push"
    )]
    pub roles: Vec<RoleName>,
}

/// Why no file was written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The file is there already; it is never overwritten.
    #[error("{} exists; init never overwrites a settings file (move it away first)", .0.display())]
    Exists(PathBuf),
    /// What the flags asked for is not usable.
    #[error("the settings init would write are not usable: {0}")]
    Invalid(#[source] SettingsError),
    /// The example changed and a value no longer has its line (a bug).
    #[error("the settings template has no line for {0}")]
    Template(&'static str),
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl InitError {
    /// 2 for what the flags or the existing file make impossible, 1 for a failed write.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Exists(_) | Self::Invalid(_) => EXIT_CONFIG,
            Self::Template(_) | Self::Write { .. } => EXIT_RUNTIME,
        }
    }
}

/// Runs `init`, writing to `path` (`--config`, else `./pushgate.toml`).
pub fn run(path: Option<&Path>, args: &InitArgs) -> ExitCode {
    let path = path.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_owned);
    let secret = new_component_secret();
    let written = render(args, &secret, &new_endpoint_key()).and_then(|text| {
        Settings::from_toml(&text).map_err(InitError::Invalid)?;
        write_new(&path, &text)
    });
    match written {
        Ok(()) => {
            println!(
                "pushgate: wrote {} (readable by its owner only), with a new component secret \
                 and UnifiedPush key.\n\nFor your XMPP server to accept the link ({}):\n\n{}\n\
                 Then: pushgate check-config --config {path}\n      \
                 pushgate serve --config {path}",
                path.display(),
                args.jid,
                server_snippets(&args.jid, &secret, 5347),
                path = path.display(),
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pushgate: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The example with the flags' values and the fresh secrets in place.
fn render(args: &InitArgs, secret: &str, key: &str) -> Result<String, InitError> {
    let roles: Vec<toml::Value> = args
        .roles
        .iter()
        .map(|role| toml::Value::from(role_name(*role)))
        .collect();
    let replacements = [
        (
            "component.jid",
            "jid = ",
            format!("jid = {}", quoted(&args.jid)),
        ),
        (
            "component.secret",
            "secret = ",
            format!("secret = {}", quoted(secret)),
        ),
        (
            "component.roles",
            "# roles = ",
            format!("roles = {}", toml::Value::Array(roles)),
        ),
        (
            "database.url",
            "url = ",
            format!("url = {}", quoted(&args.database)),
        ),
        (
            "http.public_url",
            "public_url = ",
            format!("public_url = {}", quoted(&args.public_url)),
        ),
        (
            "unified_push.keys",
            "keys = ",
            format!("keys = [{}]", quoted(key)),
        ),
    ];
    let mut lines: Vec<String> = TEMPLATE.lines().map(str::to_owned).collect();
    for (name, starts, replacement) in replacements {
        // The first line of each: the active value, not a commented alternative after it.
        let line = lines
            .iter_mut()
            .find(|line| line.starts_with(starts))
            .ok_or(InitError::Template(name))?;
        *line = replacement;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text.replacen(
        "# pushgate settings: a commented example.",
        "# pushgate settings, written by `pushgate init`. Keep this file private: it holds the\n\
         # component secret and the UnifiedPush key.",
        1,
    ))
}

/// Creates `path` readable and writable by its owner only, failing if it exists.
fn write_new(path: &Path, text: &str) -> Result<(), InitError> {
    let write_error = |source| InitError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            return Err(InitError::Exists(path.to_owned()));
        }
        Err(error) => return Err(write_error(error)),
    };
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        // A half-written file would be refused by the next `init` and misread by `serve`.
        let _ = std::fs::remove_file(path);
        return Err(write_error(error));
    }
    Ok(())
}

fn quoted(value: &str) -> String {
    toml::Value::from(value).to_string()
}

fn role_name(role: RoleName) -> &'static str {
    match role {
        RoleName::AppServer => "app_server",
        RoleName::UnifiedPush => "unified_push",
        // Not offered by `init` (it needs `[[push_module]]` entries); see docs/push-modules.md.
        RoleName::PushModules => "push_modules",
    }
}

fn parse_role(written: &str) -> Result<RoleName, String> {
    match written.trim() {
        "app_server" => Ok(RoleName::AppServer),
        "unified_push" => Ok(RoleName::UnifiedPush),
        other => Err(format!(
            "{other:?} is not a role: app_server or unified_push"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InitArgs {
        InitArgs {
            jid: "push.example.org".to_owned(),
            public_url: "https://up.example.org".to_owned(),
            database: "sqlite://pushgate.db?mode=rwc".to_owned(),
            roles: vec![RoleName::UnifiedPush],
        }
    }

    #[test]
    fn every_value_finds_its_line_and_the_result_is_usable() {
        let text = render(&args(), "s3cret", &new_endpoint_key()).expect("rendered");
        assert!(text.contains("jid = \"push.example.org\"\n"), "{text}");
        assert!(text.contains("secret = \"s3cret\"\n"));
        assert!(text.contains("roles = [\"unified_push\"]\n"));
        assert!(text.contains("public_url = \"https://up.example.org\"\n"));
        assert!(!text.contains("REPLACE-WITH"));
        assert!(!text.contains("change-me"));
        // The commented alternatives are left as they were.
        assert!(text.contains("# jid = ") || text.contains("# [[component]]"));
        let settings = Settings::from_toml(&text).expect("usable");
        assert_eq!(settings.component[0].jid, "push.example.org");
        assert_eq!(settings.component[0].roles, [RoleName::UnifiedPush]);
    }

    #[test]
    fn values_are_quoted_as_toml() {
        let mut args = args();
        args.database = "postgres://u:p\"q\\@localhost/pushgate".to_owned();
        let text = render(&args, "s", &new_endpoint_key()).expect("rendered");
        let parsed: toml::Table = text.parse().expect("TOML");
        assert_eq!(
            parsed["database"]["url"].as_str(),
            Some(args.database.as_str())
        );
    }

    #[test]
    fn roles_are_named_as_the_settings_name_them() {
        assert_eq!(parse_role("app_server"), Ok(RoleName::AppServer));
        assert!(parse_role("p2").is_err());
    }
}
