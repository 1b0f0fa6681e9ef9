//! The `[fcm]` section of `pushgate.toml`: deserialised into [`FcmConfig`] as it is, with its
//! defaults and checks here.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pushgate_core::settings::{human_duration, redact_url, serialize_redacted_optional_url};
use pushgate_upstream_http::{Proxy, ProxyError};
use serde::{Deserialize, Serialize};

use crate::service_account::{ServiceAccount, ServiceAccountError, is_http_url};

/// Google's FCM API base URL, the default of [`FcmConfig::api_url`].
pub const DEFAULT_API_URL: &str = "https://fcm.googleapis.com";

/// The default of [`FcmConfig::max_connections`]: with FCM's 100 streams per connection,
/// room for [`DEFAULT_MAX_CONCURRENT`] sends in flight.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// The default of [`FcmConfig::max_concurrent`]: every stream of
/// [`DEFAULT_MAX_CONNECTIONS`] connections at FCM's 100 each, so 10,000 wake-ups/s at 100 ms
/// per send take 1,000 of them with room to spare.
pub const DEFAULT_MAX_CONCURRENT: usize = DEFAULT_MAX_CONNECTIONS * 100;

/// The Android delivery priority of a wake-up (`android.priority` in the FCM v1 message);
/// `[fcm] priority = "high"` or `"normal"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AndroidPriority {
    /// Delivered at once, even in Doze: the default, since a delayed wake-up is useless
    /// (docs/protocol.md A.2).
    #[default]
    High,
    /// May wait for a Doze maintenance window.
    Normal,
}

impl AndroidPriority {
    /// The value sent to FCM (`high`, `normal`), as the Firebase Admin SDK writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
        }
    }

    /// Parses the setting, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("high") {
            Some(Self::High)
        } else if text.eq_ignore_ascii_case("normal") {
            Some(Self::Normal)
        } else {
            None
        }
    }
}

impl fmt::Display for AndroidPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How pushgate talks to FCM: the `[fcm]` section of `pushgate.toml`, deserialised as it is
/// (keys missing from the section take the [`Default`] values).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FcmConfig {
    /// The Google service-account JSON key file; OAuth2 tokens come from its `token_uri`.
    /// Required in the section ([`check`](Self::check) refuses a section without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_file: Option<PathBuf>,
    /// The FCM API base URL, without the `/v1/…` path; a setting so tests can use a local fake.
    pub api_url: String,
    /// Whether to send `collapse_key` (the first 6 characters of the device hash), as p2's
    /// default `fcm.collapse = true`.
    pub collapse: bool,
    /// The Android priority of wake-ups: `high` (the default) or `normal`.
    pub priority: AndroidPriority,
    /// The most one wake-up may take, retries included, so the publish IQ is answered well
    /// before the XMPP server gives up on it.
    #[serde(with = "human_duration")]
    pub request_deadline: Duration,
    /// The most FCM requests in flight at once, over all connections; a wake-up beyond it
    /// waits for one to end, within its deadline.
    pub max_concurrent: usize,
    /// The most HTTP/2 connections to FCM at once. Sends share a connection while it has a
    /// stream free (as many as the server allows at once, 100 for FCM); another is opened only
    /// when every open one is full. Past the limit, a send waits for a stream to be free.
    pub max_connections: usize,
    /// Whether an `http://` [`api_url`](Self::api_url) is spoken to in HTTP/2 with prior
    /// knowledge (h2c, RFC 9113 §3.3) first: wake-ups then share multiplexed connections, as
    /// they do with FCM itself. A relay that answers the preface in HTTP/1.1, or closes
    /// during it, is spoken to in HTTP/1.1 from then on without this setting; set it to false
    /// to skip the attempt. An `https://` URL always offers only `h2` by ALPN, as FCM speaks
    /// it; this setting does not apply. Not a key of `[fcm]`: only tests turn it off.
    #[serde(skip)]
    pub http2_prior_knowledge: bool,
    /// An HTTP proxy for FCM and its OAuth2 token endpoint,
    /// `http://[user:password@]host:port`, tunnelled through with CONNECT (`[fcm] proxy`).
    /// Printed with its password redacted.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted_optional_url"
    )]
    pub proxy: Option<String>,
    /// Whether, without [`proxy`](Self::proxy), `HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY`
    /// from the environment apply, as they do for most HTTP clients. Loopback is not left out
    /// implicitly: list it in `NO_PROXY`.
    pub proxy_from_environment: bool,
}

impl Default for FcmConfig {
    fn default() -> Self {
        Self {
            service_account_file: None,
            api_url: DEFAULT_API_URL.to_owned(),
            collapse: true,
            priority: AndroidPriority::High,
            request_deadline: Duration::from_secs(10),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http2_prior_knowledge: true,
            proxy: None,
            proxy_from_environment: true,
        }
    }
}

impl fmt::Debug for FcmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The proxy URL may hold a password.
        let proxy = self.proxy.as_deref().map(redact_url);
        f.debug_struct("FcmConfig")
            .field("service_account_file", &self.service_account_file)
            .field("api_url", &self.api_url)
            .field("collapse", &self.collapse)
            .field("priority", &self.priority)
            .field("request_deadline", &self.request_deadline)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_connections", &self.max_connections)
            .field("http2_prior_knowledge", &self.http2_prior_knowledge)
            .field("proxy", &proxy)
            .field("proxy_from_environment", &self.proxy_from_environment)
            .finish()
    }
}

/// Why the FCM settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FcmConfigError {
    /// `api_url` is not an absolute http(s) URL, or carries a query or fragment.
    #[error("fcm.api_url {url:?} {reason}")]
    BadApiUrl {
        /// The configured value.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `request_deadline` is zero: no wake-up could ever succeed.
    #[error("fcm.request_deadline must be longer than zero")]
    ZeroDeadline,
    /// `max_concurrent` is zero: no wake-up could ever be sent.
    #[error("fcm.max_concurrent must be at least 1")]
    ZeroConcurrency,
    /// `max_connections` is zero: no wake-up could ever be sent.
    #[error("fcm.max_connections must be at least 1")]
    ZeroConnections,
    /// `proxy` is not an `http://` URL with a host. The value is not repeated: it may hold a
    /// password.
    #[error("fcm.proxy: {0}")]
    BadProxy(#[from] ProxyError),
    /// FCM is configured without a service-account key file.
    #[error("fcm.service_account_file is not set")]
    NoServiceAccountFile,
    /// The service-account key file is unusable.
    #[error(transparent)]
    ServiceAccount(#[from] ServiceAccountError),
}

impl FcmConfig {
    /// Checks the settings that need no file: the URL, the deadline, the concurrency, the
    /// connections, the proxy.
    pub fn validate(&self) -> Result<(), FcmConfigError> {
        let bad_url = |reason| FcmConfigError::BadApiUrl {
            url: self.api_url.clone(),
            reason,
        };
        if !is_http_url(&self.api_url) {
            return Err(bad_url("is not an absolute http(s) URL"));
        }
        if self.api_url.contains(['?', '#']) {
            return Err(bad_url("must not have a query or fragment"));
        }
        if self.request_deadline.is_zero() {
            return Err(FcmConfigError::ZeroDeadline);
        }
        if self.max_concurrent == 0 {
            return Err(FcmConfigError::ZeroConcurrency);
        }
        if self.max_connections == 0 {
            return Err(FcmConfigError::ZeroConnections);
        }
        if let Some(proxy) = &self.proxy {
            Proxy::parse(proxy)?;
        }
        Ok(())
    }

    /// Reads and checks the service-account key file.
    pub fn load_service_account(&self) -> Result<ServiceAccount, FcmConfigError> {
        let path = self
            .service_account_file
            .as_deref()
            .ok_or(FcmConfigError::NoServiceAccountFile)?;
        Ok(ServiceAccount::from_file(path)?)
    }

    /// Everything `pushgate check-config` checks: [`validate`](Self::validate), then the key
    /// file. Returns the key so a caller that goes on to send need not read it twice.
    pub fn check(&self) -> Result<ServiceAccount, FcmConfigError> {
        self.validate()?;
        self.load_service_account()
    }

    /// Whether sends go out as HTTP/2 with prior knowledge: an `http://` URL with
    /// [`http2_prior_knowledge`](Self::http2_prior_knowledge) on.
    pub fn uses_h2c(&self) -> bool {
        self.http2_prior_knowledge
            && self
                .api_url
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    }

    /// The FCM HTTP v1 send endpoint of `project_id`:
    /// `{api_url}/v1/projects/{project_id}/messages:send`.
    pub fn send_url(&self, project_id: &str) -> String {
        format!(
            "{}/v1/projects/{project_id}/messages:send",
            self.api_url.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2c_is_for_http_urls_with_prior_knowledge_on() {
        let config = |api_url: &str, http2_prior_knowledge| FcmConfig {
            api_url: api_url.to_owned(),
            http2_prior_knowledge,
            ..FcmConfig::default()
        };
        assert!(FcmConfig::default().http2_prior_knowledge);
        assert!(!FcmConfig::default().uses_h2c(), "FCM itself is https");
        assert!(config("http://127.0.0.1:8080", true).uses_h2c());
        assert!(config("HTTP://relay.local", true).uses_h2c());
        assert!(!config("http://127.0.0.1:8080", false).uses_h2c());
        assert!(!config("https://fcm.googleapis.com", true).uses_h2c());
    }

    #[test]
    fn a_proxy_must_be_an_http_url_and_its_password_is_not_repeated() {
        let config = |proxy: &str| FcmConfig {
            proxy: Some(proxy.to_owned()),
            ..FcmConfig::default()
        };
        assert!(
            config("http://user:secret@proxy.local:3128")
                .validate()
                .is_ok()
        );
        assert!(config("proxy.local:3128").validate().is_ok());
        let error = config("socks5://user:secret@proxy.local:1080")
            .validate()
            .expect_err("SOCKS is not supported");
        assert!(matches!(error, FcmConfigError::BadProxy(_)), "{error:?}");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn the_section_deserialises_over_the_defaults_and_prints_without_the_proxy_password() {
        let empty: FcmConfig = serde_json::from_str("{}").expect("an empty section");
        assert_eq!(empty, FcmConfig::default());
        let config: FcmConfig = serde_json::from_str(
            r#"{"service_account_file": "sa.json", "priority": "normal",
                "request_deadline": "5s", "proxy": "http://user:secret@proxy.local:3128",
                "proxy_from_environment": false}"#,
        )
        .expect("parses");
        assert_eq!(config.priority, AndroidPriority::Normal);
        assert_eq!(config.request_deadline, Duration::from_secs(5));
        assert!(!config.proxy_from_environment);
        assert!(config.http2_prior_knowledge, "not a key: the default stays");
        let printed = serde_json::to_string(&config).expect("serialises");
        assert!(printed.contains(r#""request_deadline":"5s""#), "{printed}");
        assert!(printed.contains(r#""priority":"normal""#), "{printed}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(!format!("{config:?}").contains("secret"), "{config:?}");
        assert!(!printed.contains("http2_prior_knowledge"), "{printed}");
        for bad in [
            r#"{"priority": "urgent"}"#,
            r#"{"request_deadline": 10}"#,
            r#"{"http2_prior_knowledge": false}"#,
        ] {
            assert!(serde_json::from_str::<FcmConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_allow_a_thousand_sends_in_flight_and_zero_is_refused() {
        let config = FcmConfig::default();
        assert!(config.max_concurrent >= 1000);
        assert!(config.max_connections * 100 >= config.max_concurrent);
        assert!(config.validate().is_ok());
        let none = FcmConfig {
            max_connections: 0,
            ..FcmConfig::default()
        };
        assert!(matches!(
            none.validate(),
            Err(FcmConfigError::ZeroConnections)
        ));
    }
}
