//! Log output: `pretty` or `json` lines on standard error, filtered by `[log] level` or
//! `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` or `[log] level` is not a valid filter.
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter {
        /// The filter text.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging was already started: {0}")]
    AlreadyStarted(String),
}

/// Installs the global subscriber. `RUST_LOG`, when set and not empty, wins over the setting.
pub fn start(settings: &LogSettings) -> Result<(), LoggingError> {
    let filter_text = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| settings.level.clone());
    let filter = EnvFilter::try_new(&filter_text).map_err(|error| LoggingError::Filter {
        filter: filter_text.clone(),
        reason: error.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|error| LoggingError::AlreadyStarted(error.to_string()))
}
