//! Whether interop tests run, skip or fail when a real server is missing.
//!
//! `PUSHGATE_INTEROP` decides:
//! - unset (the default): run against every installed server, skip (with a printed reason)
//!   when a server is not installed;
//! - `required`: a missing server fails the test (CI sets this so nothing is skipped silently);
//! - `off`: skip all interop tests, with a printed reason.

use std::io::Write as _;

use crate::server_process::HarnessError;

/// The environment variable that selects the interop mode.
pub const INTEROP_VAR: &str = "PUSHGATE_INTEROP";

/// How interop tests treat real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteropMode {
    /// Run when installed, skip otherwise.
    IfInstalled,
    /// Run; a missing server is a failure.
    Required,
    /// Skip every interop test.
    Off,
}

impl InteropMode {
    /// Reads the mode from `PUSHGATE_INTEROP`; unknown values count as `required` so that a
    /// typo in CI cannot turn the suite into a silent skip.
    pub fn from_env() -> Self {
        match std::env::var(INTEROP_VAR) {
            Err(_) => Self::IfInstalled,
            Ok(v) if v.is_empty() => Self::IfInstalled,
            Ok(v) if v.eq_ignore_ascii_case("off") => Self::Off,
            Ok(_) => Self::Required,
        }
    }
}

/// Returns `true` when the interop tests should not run at all (`PUSHGATE_INTEROP=off`), after
/// printing why.
pub fn interop_off(test: &str) -> bool {
    let off = InteropMode::from_env() == InteropMode::Off;
    if off {
        notice(&format!("SKIPPED {test}: {INTEROP_VAR}=off"));
    }
    off
}

/// Unwraps a server start: `Some(instance)`, or `None` after printing why the test is skipped
/// when the server is not installed and the mode allows it. Any other failure panics with the
/// error, which includes the end of the server's log.
pub fn start_or_skip<T>(test: &str, started: Result<T, HarnessError>) -> Option<T> {
    match started {
        Ok(instance) => Some(instance),
        Err(e @ HarnessError::NotInstalled { .. })
            if InteropMode::from_env() != InteropMode::Required =>
        {
            notice(&format!(
                "SKIPPED {test}: {e} (set {INTEROP_VAR}=required to fail instead)"
            ));
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// Writes one line straight to the process's stderr: the test harness captures `eprintln!` of
/// passing tests, and skips and measured numbers must be visible in a normal `cargo test` run.
pub fn notice(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
