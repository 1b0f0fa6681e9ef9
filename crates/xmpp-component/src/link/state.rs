//! The observable state of a component link.

/// Where a link stands, as shown on `/health` and watched by the services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// A connection or handshake is in progress.
    Connecting,
    /// The handshake succeeded; stanzas flow.
    Connected,
    /// Another instance holds the link; this one waits to take over.
    Standby,
    /// The link is down and waits before the next attempt (or has shut down).
    Down {
        /// Why the link went down, for logs and health output (no secrets).
        reason: String,
    },
}

impl LinkState {
    /// Short name for health output: `connecting`, `up`, `standby` or `down`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "up",
            Self::Standby => "standby",
            Self::Down { .. } => "down",
        }
    }

    /// Whether stanzas can be sent now.
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Connected)
    }
}
