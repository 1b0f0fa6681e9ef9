//! The `[matrix_gateway]` section of `pushgate.toml`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::human_duration;

/// `[matrix_gateway]`: the Matrix Push Gateway on the UnifiedPush listener.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixGatewayConfig {
    /// Whether `/_matrix/push/v1/notify` is served; without the key, it is whenever the
    /// UnifiedPush provider is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long a notification is kept for a client that is offline (the store's own cap,
    /// `[unified_push] message_ttl_max`, bounds it too).
    #[serde(with = "human_duration")]
    pub ttl: Duration,
}

impl Default for MatrixGatewayConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            ttl: Duration::from_secs(86_400),
        }
    }
}

impl MatrixGatewayConfig {
    /// Whether the gateway is served, given whether the provider is.
    pub fn serves(&self, provider_serves: bool) -> bool {
        provider_serves && self.enabled.unwrap_or(true)
    }

    /// The TTL asked for each notification, in seconds.
    pub fn ttl_secs(&self) -> u32 {
        u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX)
    }
}
