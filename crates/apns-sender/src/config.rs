//! The APNs settings of one app (`[apns]`, or the `apns` of an `[[app]]` or a
//! `[[push_module]]` in `pushgate.toml`): deserialised into [`ApnsConfig`] as they are, with
//! their defaults and checks here.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pushgate_core::settings::{human_duration, redact_url, serialize_redacted_optional_url};
use pushgate_upstream_http::{Proxy, ProxyError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{MAX_PAYLOAD_BYTES, Payload};
use crate::signing_key::{SigningKey, SigningKeyProblem};

/// Apple's production API.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox (development) API: tokens of apps built for development.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// The default of [`ApnsConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
/// The default of [`ApnsConfig::max_concurrent`]: APNs lets a connection carry up to 1,000
/// streams once it trusts it, so this many never need a second connection for long.
pub const DEFAULT_MAX_CONCURRENT: usize = 1000;

/// Which APNs: production or the sandbox that development builds of an app get tokens from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    /// `api.push.apple.com`.
    #[default]
    Production,
    /// `api.sandbox.push.apple.com`.
    Sandbox,
}

impl ApnsEnvironment {
    /// Apple's URL for it.
    pub fn url(self) -> &'static str {
        match self {
            Self::Production => PRODUCTION_URL,
            Self::Sandbox => SANDBOX_URL,
        }
    }
}

/// What kind of push wakes the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// A visible notification with a generic title and `mutable-content`, which lets the app's
    /// notification service extension connect and show the real message (what Monal and every
    /// iOS XMPP client rely on): push type `alert`, priority 10.
    #[default]
    Alert,
    /// A background push (`content-available`), which iOS delivers at its discretion and
    /// throttles: push type `background`, priority 5.
    Silent,
}

/// The APNs settings of one app.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsConfig {
    /// The auth key file Apple issued (`AuthKey_<key id>.p8`). Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The key's 10-character id. Required.
    pub key_id: String,
    /// The 10-character id of the developer team that owns the key and the app. Required.
    pub team_id: String,
    /// The app's bundle id, sent as `apns-topic`. Required.
    pub topic: String,
    /// `production` (the default) or `sandbox`.
    pub environment: ApnsEnvironment,
    /// Replaces the environment's URL (a relay, a test fake); without a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Replaces Apple's sandbox URL for the development builds of a production app (Monal's
    /// `<module>-sandbox`); without a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_api_url: Option<String>,
    /// `alert` (the default) or `silent`.
    pub payload: PayloadKind,
    /// The title of an alert push: generic, since nothing about the message is known.
    pub alert_title: String,
    /// The body of an alert push, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_body: Option<String>,
    /// The sound of an alert push (`default`); empty for none.
    pub sound: String,
    /// `apns-priority`: 10 (deliver at once) or 5 (as power allows). Defaults to 10 for alert
    /// and 5 for silent pushes, which may not use 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Keys added to the payload beside `aps`, passed through as they are (Monal reads
    /// `firstGoodBuildNumber` and `knownGoodBuildNumber`, for instance).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// How long APNs keeps a push for a phone that is off (`apns-expiration`); 0 delivers it
    /// now or never.
    #[serde(with = "human_duration")]
    pub expiration: Duration,
    /// Whether a newer push replaces one still waiting in APNs for the same device
    /// (`apns-collapse-id`, the first characters of the device hash). Publishes whose node is
    /// the token name no device and are never collapsed.
    pub collapse: bool,
    /// The most one wake-up may take, retries included.
    #[serde(with = "human_duration")]
    pub request_deadline: Duration,
    /// The most requests in flight at once, over all connections.
    pub max_concurrent: usize,
    /// The most HTTP/2 connections at once.
    pub max_connections: usize,
    /// An HTTP proxy, `http://[user:password@]host:port`, tunnelled through with CONNECT.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted_optional_url"
    )]
    pub proxy: Option<String>,
    /// Whether, without [`proxy`](Self::proxy), `HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY`
    /// from the environment apply.
    pub proxy_from_environment: bool,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            key_id: String::new(),
            team_id: String::new(),
            topic: String::new(),
            environment: ApnsEnvironment::Production,
            api_url: None,
            sandbox_api_url: None,
            payload: PayloadKind::Alert,
            alert_title: "New message".to_owned(),
            alert_body: None,
            sound: "default".to_owned(),
            priority: None,
            extra: Map::new(),
            expiration: Duration::from_secs(86_400),
            collapse: true,
            request_deadline: Duration::from_secs(10),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            proxy: None,
            proxy_from_environment: true,
        }
    }
}

impl fmt::Debug for ApnsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The proxy URL may hold a password.
        let proxy = self.proxy.as_deref().map(redact_url);
        f.debug_struct("ApnsConfig")
            .field("key_file", &self.key_file)
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .field("environment", &self.environment)
            .field("api_url", &self.api_url)
            .field("sandbox_api_url", &self.sandbox_api_url)
            .field("payload", &self.payload)
            .field("priority", &self.priority)
            .field("expiration", &self.expiration)
            .field("collapse", &self.collapse)
            .field("request_deadline", &self.request_deadline)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_connections", &self.max_connections)
            .field("proxy", &proxy)
            .field("proxy_from_environment", &self.proxy_from_environment)
            .finish_non_exhaustive()
    }
}

/// Why APNs settings cannot be used; [`key`](Self::key) names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApnsConfigError {
    /// `key_file` is not set.
    #[error("is not set: the APNs auth key file (AuthKey_<key id>.p8) is required")]
    NoKeyFile,
    /// The key id or team id is unusable.
    #[error("{0}")]
    Key(SigningKeyProblem),
    /// The key file is unusable.
    #[error("{}: {problem}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: SigningKeyProblem,
    },
    /// `topic` is empty or not a bundle id.
    #[error("{0:?} is not an app's bundle id (the apns-topic)")]
    BadTopic(String),
    /// `api_url` (or `sandbox_api_url`) is not an absolute http(s) URL without a path.
    #[error("{url:?} {reason}")]
    BadApiUrl {
        /// The configured value.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
        /// Whether it is `sandbox_api_url`.
        sandbox: bool,
    },
    /// `priority` is not 10 or 5, or 10 for a silent push.
    #[error("{0} {1}")]
    BadPriority(u8, &'static str),
    /// `extra` holds `aps`, which pushgate writes itself.
    #[error("must not hold `aps`: pushgate writes it")]
    ExtraAps,
    /// The payload is larger than APNs takes.
    #[error("makes a payload of {0} bytes; APNs takes at most {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge(usize),
    /// `request_deadline` is zero.
    #[error("must be longer than zero")]
    ZeroDeadline,
    /// `max_concurrent` or `max_connections` is zero.
    #[error("must be at least 1")]
    Zero(&'static str),
    /// `proxy` is unusable.
    #[error("{0}")]
    BadProxy(#[from] ProxyError),
}

impl ApnsConfigError {
    /// The key within the APNs settings that is at fault.
    pub fn key(&self) -> &'static str {
        match self {
            Self::NoKeyFile => "key_file",
            Self::Key(SigningKeyProblem::BadKeyId(_)) => "key_id",
            Self::Key(SigningKeyProblem::BadTeamId(_)) => "team_id",
            Self::Key(_) | Self::KeyFile { .. } => "key_file",
            Self::BadTopic(_) => "topic",
            Self::BadApiUrl { sandbox: false, .. } => "api_url",
            Self::BadApiUrl { sandbox: true, .. } => "sandbox_api_url",
            Self::BadPriority(..) => "priority",
            Self::ExtraAps | Self::PayloadTooLarge(_) => "extra",
            Self::ZeroDeadline => "request_deadline",
            Self::Zero(key) => key,
            Self::BadProxy(_) => "proxy",
        }
    }
}

impl ApnsConfig {
    /// The URL requests go to: `api_url`, else the environment's.
    pub fn base_url(&self) -> &str {
        self.api_url.as_deref().unwrap_or(self.environment.url())
    }

    /// The settings of the same app's development builds (a Monal `-sandbox` module): the
    /// sandbox, at `sandbox_api_url` if set. `None` when these settings are the sandbox's
    /// already.
    pub fn sandbox_variant(&self) -> Option<Self> {
        (self.environment == ApnsEnvironment::Production).then(|| Self {
            environment: ApnsEnvironment::Sandbox,
            api_url: self.sandbox_api_url.clone(),
            ..self.clone()
        })
    }

    /// The `apns-priority` sent: the setting, else 10 for alert and 5 for silent pushes.
    pub fn effective_priority(&self) -> u8 {
        self.priority.unwrap_or(match self.payload {
            PayloadKind::Alert => 10,
            PayloadKind::Silent => 5,
        })
    }

    /// Checks everything that needs no file; the first problem found.
    pub fn validate(&self) -> Result<(), ApnsConfigError> {
        if !is_bundle_id(&self.topic) {
            return Err(ApnsConfigError::BadTopic(self.topic.clone()));
        }
        if let Some(url) = &self.api_url {
            check_url(url, false)?;
        }
        if let Some(url) = &self.sandbox_api_url {
            check_url(url, true)?;
        }
        match (self.priority, self.payload) {
            (Some(p), _) if p != 10 && p != 5 => {
                return Err(ApnsConfigError::BadPriority(p, "is not 10 or 5"));
            }
            (Some(10), PayloadKind::Silent) => {
                return Err(ApnsConfigError::BadPriority(
                    10,
                    "is refused by APNs for a silent (content-available) push; use 5",
                ));
            }
            _ => {}
        }
        if self.extra.contains_key("aps") {
            return Err(ApnsConfigError::ExtraAps);
        }
        let payload = Payload::of(self);
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ApnsConfigError::PayloadTooLarge(payload.len()));
        }
        if self.request_deadline.is_zero() {
            return Err(ApnsConfigError::ZeroDeadline);
        }
        if self.max_concurrent == 0 {
            return Err(ApnsConfigError::Zero("max_concurrent"));
        }
        if self.max_connections == 0 {
            return Err(ApnsConfigError::Zero("max_connections"));
        }
        if let Some(proxy) = &self.proxy {
            Proxy::parse(proxy)?;
        }
        Ok(())
    }

    /// [`validate`](Self::validate), then reads and parses the key file: what `check-config`
    /// runs, and what the sender is built from.
    pub fn check(&self) -> Result<SigningKey, ApnsConfigError> {
        self.validate()?;
        let path = self.key_file.as_ref().ok_or(ApnsConfigError::NoKeyFile)?;
        SigningKey::from_file(path, &self.key_id, &self.team_id).map_err(|problem| match problem {
            SigningKeyProblem::BadKeyId(_) | SigningKeyProblem::BadTeamId(_) => {
                ApnsConfigError::Key(problem)
            }
            problem => ApnsConfigError::KeyFile {
                path: path.clone(),
                problem,
            },
        })
    }
}

/// A bundle id (reverse DNS: letters, digits, `-` and `.`), with an optional `.voip`,
/// `.complication` or similar suffix, which is the same shape.
fn is_bundle_id(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 255
        && topic.contains('.')
        && topic.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn check_url(url: &str, sandbox: bool) -> Result<(), ApnsConfigError> {
    let bad = |reason| ApnsConfigError::BadApiUrl {
        url: url.to_owned(),
        reason,
        sandbox,
    };
    let parsed = url::Url::parse(url).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad("is not an http(s) URL with a host"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must have no path, query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ApnsConfig {
        ApnsConfig {
            key_id: "TESTKEY001".into(),
            team_id: "TESTTEAM01".into(),
            topic: "im.example.app".into(),
            ..ApnsConfig::default()
        }
    }

    #[test]
    fn the_section_reads_over_the_defaults() {
        let config: ApnsConfig = serde_json::from_str(
            r#"{"key_id": "TESTKEY001", "team_id": "TESTTEAM01", "topic": "im.example.app",
                "environment": "sandbox", "payload": "silent", "expiration": "0s",
                "extra": {"knownGoodBuildNumber": 1234}}"#,
        )
        .expect("parses");
        assert_eq!(config.base_url(), SANDBOX_URL);
        assert_eq!(config.payload, PayloadKind::Silent);
        assert_eq!(config.effective_priority(), 5);
        assert_eq!(config.expiration, Duration::ZERO);
        assert_eq!(config.extra["knownGoodBuildNumber"], 1234);
        config.validate().expect("valid");
        assert_eq!(valid().base_url(), PRODUCTION_URL);
        assert_eq!(valid().effective_priority(), 10);
    }

    #[test]
    fn each_bad_setting_names_its_key() {
        let key = |config: ApnsConfig| config.validate().expect_err("refused").key();
        assert_eq!(
            key(ApnsConfig {
                topic: String::new(),
                ..valid()
            }),
            "topic"
        );
        assert_eq!(
            key(ApnsConfig {
                topic: "has space.x".into(),
                ..valid()
            }),
            "topic"
        );
        assert_eq!(
            key(ApnsConfig {
                api_url: Some("https://h/path".into()),
                ..valid()
            }),
            "api_url"
        );
        assert_eq!(
            key(ApnsConfig {
                api_url: Some("ftp://h".into()),
                ..valid()
            }),
            "api_url"
        );
        assert_eq!(
            key(ApnsConfig {
                priority: Some(7),
                ..valid()
            }),
            "priority"
        );
        assert_eq!(
            key(ApnsConfig {
                priority: Some(10),
                payload: PayloadKind::Silent,
                ..valid()
            }),
            "priority"
        );
        let mut extra = Map::new();
        extra.insert("aps".into(), Value::Null);
        assert_eq!(key(ApnsConfig { extra, ..valid() }), "extra");
        let mut extra = Map::new();
        extra.insert("big".into(), Value::String("x".repeat(5000)));
        assert!(matches!(
            ApnsConfig { extra, ..valid() }.validate(),
            Err(ApnsConfigError::PayloadTooLarge(_))
        ));
        assert_eq!(
            key(ApnsConfig {
                request_deadline: Duration::ZERO,
                ..valid()
            }),
            "request_deadline"
        );
        assert_eq!(
            key(ApnsConfig {
                max_connections: 0,
                ..valid()
            }),
            "max_connections"
        );
        assert_eq!(
            key(ApnsConfig {
                proxy: Some("socks5://x".into()),
                ..valid()
            }),
            "proxy"
        );
        assert_eq!(valid().check().expect_err("no file").key(), "key_file");
    }
}
