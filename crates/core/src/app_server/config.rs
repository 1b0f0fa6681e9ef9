//! The `[app_server]` section of `pushgate.toml`, deserialised into [`AppServerConfig`] as it
//! is, with its defaults and checks here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DEFAULT_MAX_DEVICES_PER_ACCOUNT;
use crate::settings::human_duration;

/// `[app_server]`: the XEP-0357 app server role.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppServerConfig {
    /// A registration whose token the push service called dead is deleted this long after (a
    /// re-registration in between revives it); the binary's hourly maintenance purges them.
    #[serde(with = "human_duration")]
    pub purge_dead_after: Duration,
    /// The most devices one account may have registered (a token called dead does not
    /// count); a new device past it is refused with `policy-violation`. Devices already
    /// registered always register again. See [`AppServer::with_max_devices_per_account`](super::AppServer::with_max_devices_per_account).
    pub max_devices_per_account: u32,
}

impl Default for AppServerConfig {
    /// Dead registrations kept 30 days, [`DEFAULT_MAX_DEVICES_PER_ACCOUNT`] devices.
    fn default() -> Self {
        Self {
            purge_dead_after: Duration::from_secs(30 * 86_400),
            max_devices_per_account: DEFAULT_MAX_DEVICES_PER_ACCOUNT,
        }
    }
}

/// One thing wrong with `[app_server]`; [`key`](Self::key) names the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppServerConfigError {
    /// `max_devices_per_account` is zero.
    #[error("must be at least 1 (0 would refuse every new device)")]
    ZeroDevicesPerAccount,
}

impl AppServerConfigError {
    /// The key within `[app_server]` that is wrong.
    pub fn key(self) -> &'static str {
        match self {
            Self::ZeroDevicesPerAccount => "max_devices_per_account",
        }
    }
}

impl AppServerConfig {
    /// Everything wrong with the section; empty when it is usable.
    pub fn check(&self) -> Vec<AppServerConfigError> {
        let mut problems = Vec::new();
        if self.max_devices_per_account == 0 {
            problems.push(AppServerConfigError::ZeroDevicesPerAccount);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_over_the_defaults_and_zero_devices_is_refused() {
        let config: AppServerConfig =
            serde_json::from_str(r#"{"purge_dead_after": "7d"}"#).expect("parses");
        assert_eq!(config.purge_dead_after, Duration::from_secs(7 * 86_400));
        assert_eq!(
            config.max_devices_per_account,
            DEFAULT_MAX_DEVICES_PER_ACCOUNT
        );
        assert_eq!(config.check(), []);
        let printed = serde_json::to_string(&AppServerConfig::default()).expect("serialises");
        assert!(
            printed.contains(r#""purge_dead_after":"30days""#),
            "{printed}"
        );
        let zero = AppServerConfig {
            max_devices_per_account: 0,
            ..AppServerConfig::default()
        };
        assert_eq!(zero.check(), [AppServerConfigError::ZeroDevicesPerAccount]);
    }
}
