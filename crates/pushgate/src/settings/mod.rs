//! Settings: built-in defaults < the TOML file < `PUSHGATE_<SECTION>__<KEY>` environment
//! variables. Every error names the key and where its value came from.

mod apps;
mod problems;
mod sections;
mod validate;
mod values;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

pub use apps::{AppSettings, PushModuleSettings};
pub use problems::{Problem, SettingsError};

use crate::first_run::{DataDir, FirstRun};
pub use pushgate_apns::ApnsConfig;
pub use pushgate_core::app_server::AppServerConfig;
pub use pushgate_core::matrix_gateway::MatrixGatewayConfig;
pub use pushgate_core::provider::UnifiedPushConfig;
pub use pushgate_core::push_module::PushModulesConfig;
pub use pushgate_core::settings::redact_url;
pub use pushgate_fcm::FcmConfig;
pub use pushgate_store::DatabaseConfig;
pub use pushgate_up_http::HttpConfig;
pub use pushgate_xmpp::{ComponentSettings, RoleName};
pub use sections::{LogFormat, LogSettings, MetricsSettings, RuntimeSettings};
pub use values::{HumanDuration, REDACTED, SecretString};

/// The environment variable naming the settings file when `--config` is not given.
pub const CONFIG_ENV: &str = "PUSHGATE_CONFIG";
/// The prefix of environment variables that set keys (`PUSHGATE_DATABASE__URL`).
pub const ENV_PREFIX: &str = "PUSHGATE_";
/// The file read when neither `--config` nor `PUSHGATE_CONFIG` is given, if it exists.
pub const DEFAULT_FILE: &str = "pushgate.toml";

/// All of pushgate's settings, one field per section. A section a crate reads is that crate's
/// own config type, deserialised as it is with its defaults, docs and checks beside it; the
/// binary composes them, checks what spans sections or the list of components, and owns only
/// the sections no crate reads (`[metrics]`, `[log]`, `[runtime]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[component]` or `[[component]]`: one XEP-0114 link each, owned by `pushgate-xmpp`.
    #[serde(deserialize_with = "pushgate_xmpp::one_or_many_components")]
    pub component: Vec<ComponentSettings>,
    /// `[database]`, owned by `pushgate-store`.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// `[http]`, owned by `pushgate-up-http`.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[fcm]`, owned by `pushgate-fcm`; without it the XEP-0357 app server cannot wake
    /// devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmConfig>,
    /// `[apns]`, owned by `pushgate-apns`; without it the app server cannot wake iOS
    /// devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsConfig>,
    /// `[[app]]`: further apps, each with its own FCM and APNs credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app: Vec<AppSettings>,
    /// `[app_server]`, owned by `pushgate-core`.
    #[serde(default)]
    pub app_server: AppServerConfig,
    /// `[push_modules]`, owned by `pushgate-core`: the token-in-node role's limits.
    #[serde(default)]
    pub push_modules: PushModulesConfig,
    /// `[[push_module]]`: the apps behind the token-in-node role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_module: Vec<PushModuleSettings>,
    /// `[unified_push]`, owned by `pushgate-core`.
    #[serde(default)]
    pub unified_push: UnifiedPushConfig,
    /// `[matrix_gateway]`, owned by `pushgate-core`: the Matrix Push Gateway beside the
    /// UnifiedPush endpoints.
    #[serde(default)]
    pub matrix_gateway: MatrixGatewayConfig,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// `[log]`.
    #[serde(default)]
    pub log: LogSettings,
    /// `[runtime]`.
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

/// Which settings file is read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsFile {
    /// Named by `--config`.
    Flag(PathBuf),
    /// Named by `PUSHGATE_CONFIG`.
    Env(PathBuf),
    /// `./pushgate.toml`, found in the working directory.
    WorkingDirectory(PathBuf),
    /// No file: defaults and environment only.
    None,
}

impl SettingsFile {
    /// `--config` if given, else `PUSHGATE_CONFIG`, else `./pushgate.toml` if it exists.
    pub fn locate(flag: Option<&Path>) -> Self {
        if let Some(path) = flag {
            return Self::Flag(path.to_owned());
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|path| !path.is_empty()) {
            return Self::Env(PathBuf::from(path));
        }
        let default = PathBuf::from(DEFAULT_FILE);
        if default.is_file() {
            Self::WorkingDirectory(default)
        } else {
            Self::None
        }
    }

    /// The file's path, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(path) | Self::Env(path) | Self::WorkingDirectory(path) => Some(path),
            Self::None => None,
        }
    }

    fn origin(&self) -> &'static str {
        match self {
            Self::Flag(_) => "given by --config",
            Self::Env(_) => "named by PUSHGATE_CONFIG",
            Self::WorkingDirectory(_) => "in the working directory",
            Self::None => "",
        }
    }
}

impl Settings {
    /// Whether several instances may share this database (PostgreSQL is the only engine they
    /// can coordinate through).
    pub fn shares_database(&self) -> bool {
        matches!(
            pushgate_store::Backend::from_url(&self.database.url),
            Ok(pushgate_store::Backend::Postgres)
        )
    }

    /// The `unified_push` link, if one serves the role.
    pub fn unified_push_component(&self) -> Option<&ComponentSettings> {
        self.component
            .iter()
            .find(|component| component.roles.contains(&RoleName::UnifiedPush))
    }

    /// Whether an instance without the `unified_push` link hands pushes to the one holding it:
    /// on PostgreSQL, when the link is `single` (one instance at a time holds it).
    pub fn hands_over_pushes(&self) -> bool {
        self.shares_database()
            && self
                .unified_push_component()
                .is_some_and(|component| component.mode == pushgate_xmpp::LinkMode::Single)
    }
    /// Loads the settings from `file` and the process environment, reads the `*_file`
    /// secrets, and checks everything. Without a file, the first-run defaults of
    /// [`first_run`](crate::first_run) stand in for it, their data directory prepared.
    pub fn load(file: &SettingsFile) -> Result<Self, SettingsError> {
        Self::load_with_first_run(file).map(|(settings, _)| settings)
    }

    /// [`load`](Self::load), and what a run without a settings file read from (or made in)
    /// its data directory.
    pub fn load_with_first_run(
        file: &SettingsFile,
    ) -> Result<(Self, Option<FirstRun>), SettingsError> {
        let mut figment = Figment::new();
        let mut first_run = None;
        if let Some(path) = file.path() {
            // figment silently skips a missing file; a named file that is not there is an error.
            if let Err(source) = std::fs::metadata(path) {
                return Err(SettingsError::File {
                    path: path.to_owned(),
                    origin: file.origin(),
                    source,
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        } else {
            let prepared = DataDir::locate().prepare()?;
            figment = figment.merge(Toml::string(&prepared.settings_toml()?));
            first_run = Some(prepared);
        }
        // Only `PUSHGATE_<SECTION>__<KEY>` are settings. Other `PUSHGATE_*` variables belong to
        // someone else: Kubernetes sets `PUSHGATE_PORT=tcp://…`, `PUSHGATE_SERVICE_HOST` and
        // more for any Service named `pushgate`.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );

        Self::extract_and_check(&figment).map(|settings| (settings, first_run))
    }

    /// The settings a TOML document gives alone (no environment), checked as
    /// [`load`](Self::load) checks them: what `init` is about to write.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        Self::extract_and_check(&Figment::new().merge(Toml::string(text)))
    }

    fn extract_and_check(figment: &Figment) -> Result<Self, SettingsError> {
        let mut settings: Settings = figment
            .extract()
            .map_err(|error| SettingsError::Invalid(problems::from_figment(error)))?;
        let findings = validate::resolve_and_check(&mut settings);
        if findings.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError::Invalid(problems::locate(figment, findings)))
        }
    }

    /// The effective settings as TOML, with every secret replaced by [`REDACTED`].
    pub fn to_redacted_toml(&self) -> Result<String, SettingsError> {
        toml::to_string_pretty(self).map_err(|error| SettingsError::Render(error.to_string()))
    }
}
