//! The `[database]` section of `pushgate.toml`: deserialised into [`DatabaseConfig`] as it is,
//! with its defaults and checks here; the store's and the cache's own configuration are
//! derived from it.

use std::time::Duration;

use pushgate_core::settings::{human_duration, lenient_string, serialize_redacted_url};
use serde::{Deserialize, Serialize};

use crate::{CacheConfig, StoreConfig};

/// The longest [`DatabaseConfig::cache_ttl`]: past it, instances sharing a database would
/// disagree for too long.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// `[database]`: where registrations, revocations and stored messages live, and how much of
/// them is cached in memory.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…`, `postgres://…`, `mysql://…` or `mariadb://…`; printed with its password
    /// redacted.
    #[serde(
        deserialize_with = "lenient_string",
        serialize_with = "serialize_redacted_url"
    )]
    pub url: String,
    /// The most connections the pool opens; when not set, 2 for SQLite (one writer at a time
    /// anyway, and each connection keeps a thread and a page cache of its own) and 10 for
    /// PostgreSQL and MariaDB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// The longest a query waits for a free connection.
    #[serde(with = "human_duration")]
    pub acquire_timeout: Duration,
    /// SQLite only: how long a write waits for the database lock.
    #[serde(with = "human_duration")]
    pub sqlite_busy_timeout: Duration,
    /// How long a registration or revocation answer read from the database is given again
    /// from memory: the longest another instance's change on a shared database goes unseen.
    /// `"0s"` turns the cache off; at most [`MAX_CACHE_TTL`].
    #[serde(with = "human_duration")]
    pub cache_ttl: Duration,
    /// The most registrations kept in memory, and separately the most endpoint revocation
    /// answers. 0 turns the cache off.
    pub cache_entries: usize,
}

impl Default for DatabaseConfig {
    /// A SQLite file in the working directory, created if missing, with the store's and the
    /// cache's own defaults.
    fn default() -> Self {
        let store = StoreConfig::new("sqlite://pushgate.db?mode=rwc");
        let cache = CacheConfig::default();
        Self {
            url: store.url,
            max_connections: None,
            acquire_timeout: store.acquire_timeout,
            sqlite_busy_timeout: store.sqlite_busy_timeout,
            cache_ttl: cache.ttl,
            cache_entries: cache.max_entries,
        }
    }
}

/// One thing wrong with `[database]`; [`key`](Self::key) names the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseConfigError {
    /// `url` names no supported database.
    #[error("the URL must start with sqlite:, postgres:, postgresql:, mysql: or mariadb:")]
    UnsupportedUrl,
    /// `max_connections` is zero: no query could ever run.
    #[error("must be at least 1")]
    ZeroConnections,
    /// `acquire_timeout` is zero: every query would time out.
    #[error("must be longer than zero")]
    ZeroAcquireTimeout,
    /// `cache_ttl` is over [`MAX_CACHE_TTL`].
    #[error("must be at most 1h: another instance's changes stay unseen this long")]
    CacheTtlTooLong,
}

impl DatabaseConfigError {
    /// The key within `[database]` that is wrong (`url`, `max_connections`, …).
    pub fn key(self) -> &'static str {
        match self {
            Self::UnsupportedUrl => "url",
            Self::ZeroConnections => "max_connections",
            Self::ZeroAcquireTimeout => "acquire_timeout",
            Self::CacheTtlTooLong => "cache_ttl",
        }
    }
}

impl DatabaseConfig {
    /// Everything wrong with the section, in key order; empty when it is usable. The database
    /// itself is not reached.
    pub fn check(&self) -> Vec<DatabaseConfigError> {
        let mut problems = Vec::new();
        let scheme = self.url.split_once(':').map(|(scheme, _)| scheme);
        if !matches!(
            scheme,
            Some("sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb")
        ) {
            problems.push(DatabaseConfigError::UnsupportedUrl);
        }
        if self.max_connections == Some(0) {
            problems.push(DatabaseConfigError::ZeroConnections);
        }
        if self.acquire_timeout.is_zero() {
            problems.push(DatabaseConfigError::ZeroAcquireTimeout);
        }
        if self.cache_ttl > MAX_CACHE_TTL {
            problems.push(DatabaseConfigError::CacheTtlTooLong);
        }
        problems
    }

    /// The pool size: the setting, or the default for the database in `url`.
    pub fn pool_size(&self) -> u32 {
        self.max_connections
            .unwrap_or(if self.url.starts_with("sqlite:") {
                2
            } else {
                10
            })
    }

    /// The store's configuration.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            max_connections: self.pool_size(),
            acquire_timeout: self.acquire_timeout,
            sqlite_busy_timeout: self.sqlite_busy_timeout,
            ..StoreConfig::new(self.url.clone())
        }
    }

    /// The cache's configuration.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig {
            max_entries: self.cache_entries,
            ttl: self.cache_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_defaults_by_database_and_the_setting_wins() {
        let mut database = DatabaseConfig::default();
        assert_eq!(database.pool_size(), 2, "SQLite by default");
        database.url = "postgres://db.example/pushgate".to_owned();
        assert_eq!(database.pool_size(), 10);
        database.url = "mysql://db.example/pushgate".to_owned();
        assert_eq!(database.pool_size(), 10);
        database.max_connections = Some(3);
        assert_eq!(database.pool_size(), 3);
        assert_eq!(database.store_config().max_connections, 3);
        database.url = "sqlite://other.db".to_owned();
        assert_eq!(database.pool_size(), 3);
    }

    #[test]
    fn the_defaults_pass_and_every_rule_names_its_key() {
        assert_eq!(DatabaseConfig::default().check(), []);
        let config = DatabaseConfig {
            url: "redis://localhost".to_owned(),
            max_connections: Some(0),
            acquire_timeout: Duration::ZERO,
            cache_ttl: Duration::from_secs(7200),
            ..DatabaseConfig::default()
        };
        let keys: Vec<_> = config.check().into_iter().map(|e| e.key()).collect();
        assert_eq!(
            keys,
            ["url", "max_connections", "acquire_timeout", "cache_ttl"]
        );
    }
}
