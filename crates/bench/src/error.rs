//! Why a benchmark could not run to the end.

use std::io;

use pushgate_testkit::HarnessError;
use pushgate_testkit::c2s_client::C2sError;

/// A benchmark failure; the run stops and everything it started is stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file, socket or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Prosody could not be started or driven.
    #[error(transparent)]
    Prosody(#[from] HarnessError),
    /// The XMPP client playing the phone failed.
    #[error("XMPP client: {0}")]
    Client(#[from] C2sError),
    /// pushgate did not come up, ended early, or answered in a way the benchmark cannot use.
    #[error("pushgate: {0}")]
    Pushgate(String),
    /// A database the benchmark prepares or reads failed (the message never holds a password).
    #[error("database: {0}")]
    Database(String),
    /// A peer did not behave as the benchmark needs.
    #[error("{0}")]
    Protocol(String),
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
        let action = action.into();
        move |source| BenchError::Io { action, source }
    }
}
