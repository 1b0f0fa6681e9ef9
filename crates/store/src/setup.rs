//! What it takes to open a store: the settings, the backend a URL names, and what can go wrong.

use std::fmt;
use std::time::Duration;

/// How to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://pushgate.db?mode=rwc`, `sqlite::memory:`, `postgres://user:pass@host/db` or
    /// `mysql://user:pass@host/db` (`mariadb://` works too).
    pub url: String,
    /// The most connections the pool opens (an in-memory SQLite database always uses one).
    pub max_connections: u32,
    /// How long an operation waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for another writer's lock.
    pub sqlite_busy_timeout: Duration,
    /// SQLite file only: how often the store returns the pages deleted rows left free to the
    /// file system and folds the write-ahead log into the database, truncating it. Zero turns
    /// these rounds off (SQLite still checkpoints the log every 1000 pages written).
    pub sqlite_maintenance_interval: Duration,
}

impl StoreConfig {
    /// Settings for `url` with the defaults: 8 connections, 5 s acquire timeout, 5 s SQLite
    /// busy timeout, SQLite maintenance every 30 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_maintenance_interval: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("sqlite_busy_timeout", &self.sqlite_busy_timeout)
            .field(
                "sqlite_maintenance_interval",
                &self.sqlite_maintenance_interval,
            )
            .finish()
    }
}

/// The database product behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, embedded (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The backend a database URL names by its scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreSetupError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            _ => Err(StoreSetupError::UnsupportedUrl {
                // Only the scheme: the rest of the URL may hold a password.
                scheme: scheme.chars().take(32).collect(),
            }),
        }
    }

    /// A short lowercase name (`sqlite`, `postgres`, `mysql`) for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store could not be opened. No variant prints a password from the URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// The URL names no supported database.
    #[error(
        "unsupported database URL scheme `{scheme}`: expected sqlite:, postgres:, postgresql:, mysql: or mariadb:"
    )]
    UnsupportedUrl {
        /// The scheme found (before the first `:`).
        scheme: String,
    },
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the driver said, with any password removed.
        reason: String,
    },
    /// The schema migrations failed.
    #[error("cannot migrate the database at {url}: {reason}")]
    Migrate {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the migrator said, with any password removed.
        reason: String,
    },
}

impl StoreSetupError {
    pub(crate) fn connect(url: &str, error: &dyn fmt::Display) -> Self {
        Self::Connect {
            url: redact_url(url),
            reason: redact_text(&error.to_string(), url),
        }
    }

    pub(crate) fn migrate(url: &str, error: &dyn fmt::Display) -> Self {
        Self::Migrate {
            url: redact_url(url),
            reason: redact_text(&error.to_string(), url),
        }
    }
}

/// The password of `scheme://user:password@host/…`, if the URL has one.
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The URL with its password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    redact_text(url, url)
}

/// `text` with every occurrence of the URL's password replaced by `***`.
pub(crate) fn redact_text(text: &str, url: &str) -> String {
    match password(url) {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}

/// Whether a SQLite URL names an in-memory database, which lives only as long as its one
/// connection.
pub(crate) fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_name_backends() {
        assert_eq!(
            Backend::from_url("sqlite://a.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db").ok(), Some(Backend::MySql));
        assert_eq!(
            Backend::from_url("mariadb://h/db").ok(),
            Some(Backend::MySql)
        );
        for url in ["redis://h", "", "pushgate.db", "mssql://sa:pw@h/db"] {
            let error = Backend::from_url(url).err();
            assert!(
                matches!(error, Some(StoreSetupError::UnsupportedUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn unsupported_url_does_not_print_the_password() {
        let error = Backend::from_url("mssql://sa:hunter2@h/db")
            .err()
            .map(|e| e.to_string());
        let message = error.unwrap_or_default();
        assert!(message.contains("`mssql`"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn passwords_are_redacted() {
        let url = "postgres://push:s3cr%40t@db.example.test:5432/push?sslmode=disable";
        assert_eq!(
            redact_url(url),
            "postgres://push:***@db.example.test:5432/push?sslmode=disable"
        );
        let error = StoreSetupError::connect(url, &format!("bad url {url}"));
        assert!(!error.to_string().contains("s3cr"), "{error}");
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(
            redact_url("sqlite://a.db?mode=rwc"),
            "sqlite://a.db?mode=rwc"
        );
        let config = StoreConfig::new(url);
        assert!(!format!("{config:?}").contains("s3cr"));
    }

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_sqlite_memory("sqlite::memory:"));
        assert!(is_sqlite_memory("sqlite://x?mode=memory"));
        assert!(!is_sqlite_memory("sqlite://pushgate.db?mode=rwc"));
    }
}
