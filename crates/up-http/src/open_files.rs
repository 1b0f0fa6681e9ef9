//! The process's limit on open files, which bounds how many connections it can hold: every
//! connection is a file descriptor, and many systems start processes with a soft limit of
//! 1024.

use crate::connection::REFUSALS_AT_ONCE;
use crate::limits::ServerConfig;

/// The process's limit on open files (`RLIMIT_NOFILE`); `None` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The limit in force.
    pub soft: Option<u64>,
    /// The most the soft limit may be raised to without privileges.
    pub hard: Option<u64>,
}

impl OpenFilesLimit {
    /// Whether the limit in force allows `files` open files.
    #[must_use]
    pub fn allows(&self, files: u64) -> bool {
        self.soft.is_none_or(|soft| soft >= files)
    }
}

/// Why the limit on open files could not be raised.
#[derive(Debug, thiserror::Error)]
pub enum OpenFilesLimitError {
    /// `setrlimit` refused the new soft limit.
    #[error("raising the soft limit on open files from {from:?} to {to} failed: {source}")]
    Raise {
        /// The soft limit before (`None`: unlimited).
        from: Option<u64>,
        /// The soft limit asked for.
        to: u64,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Linux's default ceiling on open files per process (`fs.nr_open`), used when the hard
/// limit reads as unlimited: a soft limit of "unlimited" is refused there.
const UNLIMITED_HARD_TARGET: u64 = 1 << 20;

/// Raises the soft limit on open files to the hard limit and returns the limit now in force
/// (unchanged when the soft limit already was the hard one).
pub fn raise_open_files_limit() -> Result<OpenFilesLimit, OpenFilesLimitError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let before = getrlimit(Resource::Nofile);
    let target = before.maximum.unwrap_or(UNLIMITED_HARD_TARGET);
    if before.current.is_none_or(|soft| soft >= target) {
        return Ok(OpenFilesLimit {
            soft: before.current,
            hard: before.maximum,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: before.maximum,
        },
    )
    .map_err(|errno| OpenFilesLimitError::Raise {
        from: before.current,
        to: target,
        source: errno.into(),
    })?;
    let after = getrlimit(Resource::Nofile);
    Ok(OpenFilesLimit {
        soft: after.current,
        hard: after.maximum,
    })
}

impl ServerConfig {
    /// How many file descriptors a server with this configuration may hold at once: every
    /// connection it serves, those it is refusing, one accepted while it makes room, and the
    /// listener.
    #[must_use]
    pub fn open_files_needed(&self) -> u64 {
        let files = self.max_connections.max(1) + REFUSALS_AT_ONCE + 2;
        u64::try_from(files).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limit = raise_open_files_limit().expect("raising to the hard limit is allowed");
        match limit.hard {
            Some(hard) => assert_eq!(limit.soft, Some(hard)),
            None => assert!(limit.soft.is_none_or(|soft| soft >= UNLIMITED_HARD_TARGET)),
        }
        // A second call changes nothing.
        assert_eq!(raise_open_files_limit().expect("again"), limit);
        assert!(limit.allows(1024));
    }
}
