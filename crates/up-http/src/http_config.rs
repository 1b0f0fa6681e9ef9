//! The `[http]` section of `pushgate.toml`: deserialised into [`HttpConfig`] as it is, with its
//! defaults and checks here; the server's [`ServerConfig`] is derived from it.

use std::net::SocketAddr;
use std::time::Duration;

use pushgate_core::settings::human_duration;
use serde::{Deserialize, Serialize};

use crate::limits::ServerConfig;

/// `[http]`: the listener for UnifiedPush endpoints and `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The public base URL of the listener; endpoints are `{public_url}/push/{token}`. The
    /// binary checks it and drops a trailing `/`, since whether it is required depends on
    /// `[unified_push]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The longest a request may take to be answered ([`ServerConfig::request_timeout`]).
    #[serde(with = "human_duration")]
    pub request_timeout: Duration,
    /// The longest a client may take to send a request head; also how long an idle
    /// keep-alive connection is kept ([`ServerConfig::header_read_timeout`]).
    #[serde(with = "human_duration")]
    pub header_read_timeout: Duration,
    /// The longest a request body may go without a byte arriving
    /// ([`ServerConfig::body_read_timeout`]).
    #[serde(with = "human_duration")]
    pub body_read_timeout: Duration,
    /// The most connections served at once; at the limit the connection idle the longest
    /// makes room for a new one ([`ServerConfig::max_connections`]).
    pub max_connections: usize,
    /// The most connections from one client address (IPv6: one /64); 0 means no cap
    /// ([`ServerConfig::max_connections_per_address`]).
    pub max_connections_per_address: usize,
    /// On shutdown, how long in-flight requests may take to finish
    /// ([`ServerConfig::shutdown_grace`]).
    #[serde(with = "human_duration")]
    pub shutdown_grace: Duration,
    /// Whether the client address for rate limits is taken from the last `X-Forwarded-For`
    /// (or `Forwarded: for=`) entry, the one a reverse proxy in front adds
    /// ([`PushEndpointConfig::trust_forwarded_for`](crate::PushEndpointConfig::trust_forwarded_for)).
    pub trust_forwarded_for: bool,
}

impl Default for HttpConfig {
    /// Loopback port 8080 with the server's own defaults.
    fn default() -> Self {
        let server = ServerConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            request_timeout: server.request_timeout,
            header_read_timeout: server.header_read_timeout,
            body_read_timeout: server.body_read_timeout,
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            shutdown_grace: server.shutdown_grace,
            trust_forwarded_for: false,
        }
    }
}

/// One thing wrong with `[http]`; [`key`](Self::key) names the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// A timeout is zero: every request would fail.
    #[error("must be longer than zero")]
    ZeroTimeout {
        /// `request_timeout`, `header_read_timeout` or `body_read_timeout`.
        key: &'static str,
    },
    /// `max_connections` is zero: no connection could be served.
    #[error("must be at least 1")]
    ZeroConnections,
}

impl HttpConfigError {
    /// The key within `[http]` that is wrong.
    pub fn key(self) -> &'static str {
        match self {
            Self::ZeroTimeout { key } => key,
            Self::ZeroConnections => "max_connections",
        }
    }
}

impl HttpConfig {
    /// Everything wrong with the section's server settings, in key order; empty when they are
    /// usable. `public_url` is left to the caller.
    pub fn check(&self) -> Vec<HttpConfigError> {
        let mut problems: Vec<HttpConfigError> = [
            ("request_timeout", self.request_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ]
        .into_iter()
        .filter(|(_, timeout)| timeout.is_zero())
        .map(|(key, _)| HttpConfigError::ZeroTimeout { key })
        .collect();
        if self.max_connections == 0 {
            problems.push(HttpConfigError::ZeroConnections);
        }
        problems
    }

    /// The server's configuration: these settings and the UnifiedPush body cap.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            request_timeout: self.request_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            shutdown_grace: self.shutdown_grace,
            ..ServerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_servers_and_zeroes_are_refused_by_key() {
        let config = HttpConfig::default();
        assert_eq!(config.server_config(), ServerConfig::default());
        assert_eq!(config.check(), []);
        let zero = HttpConfig {
            header_read_timeout: Duration::ZERO,
            max_connections: 0,
            ..HttpConfig::default()
        };
        let keys: Vec<_> = zero.check().into_iter().map(HttpConfigError::key).collect();
        assert_eq!(keys, ["header_read_timeout", "max_connections"]);
    }

    #[test]
    fn the_section_reads_humantime_durations_and_refuses_unknown_keys() {
        let config: HttpConfig = serde_json::from_str(
            r#"{"listen": "0.0.0.0:9000", "request_timeout": "30s", "max_connections": 10}"#,
        )
        .expect("parses");
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.listen.port(), 9000);
        let printed = serde_json::to_string(&config).expect("serialises");
        assert!(printed.contains(r#""request_timeout":"30s""#), "{printed}");
        assert!(serde_json::from_str::<HttpConfig>(r#"{"listn": "0.0.0.0:1"}"#).is_err());
    }
}
