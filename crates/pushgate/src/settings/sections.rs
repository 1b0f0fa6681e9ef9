//! The sections only the binary reads (`[metrics]`, `[log]`, `[runtime]`), one struct each
//! with its built-in defaults: the sections of the other crates are their own config types
//! (see `Settings`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::values::lenient_string;

/// `[metrics]`: the Prometheus endpoint, and the delivery trace its listener answers for.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `GET /metrics` (and the operator's `GET /trace`) listens; off when not set. Keep
    /// it off the public listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Registrations and UnifiedPush accounts whose last deliveries are kept in memory (the
    /// least recently used make room); 0 turns the delivery trace off.
    pub trace_keys: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: None,
            trace_keys: pushgate_core::trace::DEFAULT_TRACE_KEYS,
        }
    }
}

/// `[runtime]`: the threads that run pushgate.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Threads running the links, the HTTP listener and the senders: 1 (the default) runs
    /// everything on one thread, which spends the least CPU per wake-up or push (no hand-offs
    /// between threads); more spread the work over that many threads; 0 means one per core.
    /// The database driver has threads of its own either way.
    pub worker_threads: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging to standard error.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `pushgate=debug,info`); `RUST_LOG` overrides it.
    #[serde(deserialize_with = "lenient_string")]
    pub level: String,
    /// `pretty` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        }
    }
}
