//! The `[push_modules]` section of `pushgate.toml`: how the token-in-node role treats the
//! publishes of every module (the modules themselves are `[[push_module]]` entries, which the
//! binary turns into wakers).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::human_duration;

/// The default of [`PushModulesConfig::max_tracked_tokens`].
pub const DEFAULT_MAX_TRACKED_TOKENS: usize = 100_000;

/// `[push_modules]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushModulesConfig {
    /// The module of a publish without a `pushModule` field. Without it, the only module
    /// when there is one; with several, such a publish names no module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Publishes for one token within this long of its last push are coalesced into one push
    /// at the end of it, so a burst of messages makes two pushes, not one per message (APNs
    /// throttles a device that gets too many). 0 sends every publish on its own.
    #[serde(with = "human_duration")]
    pub min_interval: Duration,
    /// A token the push service called dead is answered `item-not-found` for this long
    /// without asking the service again.
    #[serde(with = "human_duration")]
    pub remember_dead_for: Duration,
    /// The most tokens whose recent pushes (for coalescing) and death are kept in memory.
    pub max_tracked_tokens: usize,
}

impl Default for PushModulesConfig {
    fn default() -> Self {
        Self {
            default: None,
            min_interval: Duration::from_secs(2),
            remember_dead_for: Duration::from_secs(86_400),
            max_tracked_tokens: DEFAULT_MAX_TRACKED_TOKENS,
        }
    }
}
