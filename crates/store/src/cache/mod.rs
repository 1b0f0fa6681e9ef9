//! [`CachingStore`]: a [`Store`] that answers the two hot lookups from memory.
//!
//! A publish looks its registration up by (domain, node) and a UnifiedPush POST asks whether
//! its endpoint is revoked; both would otherwise cost a database round trip each time. The
//! answers are kept for a short time (`ttl`), so a change made by another instance sharing the
//! database is seen within it; every write made through this store updates or drops the
//! entries it touches at once. Answers whose staleness could cause a wrong decision are not
//! kept: a dead registration and "no such node" both lead to a cancel error that makes the
//! user's server drop the registration, so they are read from the database every time. A
//! stale live registration (a token replaced on another instance) is caught by the app
//! server, which wakes the new token when the old one turns out dead.
//!
//! Everything else passes straight through.

mod bus;
mod endpoints;
mod port;
mod registrations;
mod shelf;

use std::sync::Arc;
use std::time::Duration;

use pushgate_core::{Clock, Store, SystemClock};

use crate::setup::Backend;
use crate::sql_store::SqlStore;

use bus::{CacheBus, Invalidation};
use endpoints::EndpointCache;
use registrations::RegistrationCache;

pub use bus::CHANNEL as CACHE_CHANNEL;

/// How much [`CachingStore`] keeps, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most registrations kept, and separately the most endpoint revocation answers.
    /// Zero turns caching off.
    pub max_entries: usize,
    /// How long an answer read from the database is given again: the longest a change made
    /// by another instance sharing the database goes unseen here. Zero turns caching off.
    pub ttl: Duration,
}

impl CacheConfig {
    /// No caching: every call reaches the database.
    pub const DISABLED: CacheConfig = CacheConfig {
        max_entries: 0,
        ttl: Duration::ZERO,
    };

    /// Whether anything is kept.
    pub fn is_enabled(&self) -> bool {
        self.max_entries > 0 && !self.ttl.is_zero()
    }
}

impl Default for CacheConfig {
    /// 100 000 entries of each kind, trusted for 60 s.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(60),
        }
    }
}

/// A [`Store`] in front of another one (the SQL store) that keeps live registrations and
/// revocation answers in memory; see the module docs for what is kept and why.
pub struct CachingStore<S> {
    inner: S,
    clock: Arc<dyn Clock>,
    registrations: Option<Arc<RegistrationCache>>,
    endpoints: Option<Arc<EndpointCache>>,
    /// The other instances on the same PostgreSQL database, when told of them.
    bus: Option<CacheBus>,
}

impl<S: Store> CachingStore<S> {
    /// Caches `inner` as `config` says, timing entries by the wall clock.
    pub fn new(inner: S, config: CacheConfig) -> Self {
        Self::with_clock(inner, config, Arc::new(SystemClock))
    }

    /// Caches `inner`, timing entries by `clock` (tests move it by hand).
    pub fn with_clock(inner: S, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let enabled = config.is_enabled();
        let ttl_ms = i64::try_from(config.ttl.as_millis()).unwrap_or(i64::MAX);
        Self {
            inner,
            clock,
            registrations: enabled
                .then(|| Arc::new(RegistrationCache::new(config.max_entries, ttl_ms))),
            endpoints: enabled.then(|| Arc::new(EndpointCache::new(config.max_entries, ttl_ms))),
            bus: None,
        }
    }

    /// Tells the other instances, if there are any to tell.
    async fn publish(&self, invalidation: Invalidation) {
        if let Some(bus) = &self.bus {
            bus.publish(&invalidation).await;
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many registrations are kept now (stale ones included until evicted or swept).
    pub fn cached_registrations(&self) -> usize {
        self.registrations.as_ref().map_or(0, |cache| cache.len())
    }

    /// How many endpoint answers are kept now (stale ones included until evicted or swept).
    pub fn cached_endpoints(&self) -> usize {
        self.endpoints.as_ref().map_or(0, |cache| cache.len())
    }
}

impl CachingStore<SqlStore> {
    /// On PostgreSQL, where several instances may share the database: tells the others what
    /// this one changes, and drops what they change, within a moment rather than after the
    /// cache's `ttl` (`LISTEN`/`NOTIFY` on [`CACHE_CHANNEL`], see `bus.rs`). `url` is the
    /// database's, for the listening connection. On SQLite or MySQL, or without caching,
    /// nothing changes. Needs a tokio runtime.
    #[must_use]
    pub fn shared_with_other_instances(mut self, url: &str) -> Self {
        let postgres = self.inner.backend() == Backend::Postgres;
        if let (true, Some(registrations), Some(endpoints)) =
            (postgres, &self.registrations, &self.endpoints)
        {
            crate::metrics::cache_bus_started();
            self.bus = Some(CacheBus::start(
                url,
                self.inner.pool.clone(),
                Arc::clone(registrations),
                Arc::clone(endpoints),
            ));
        }
        self
    }
}

impl<S> std::fmt::Debug for CachingStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingStore")
            .field("enabled", &self.registrations.is_some())
            .finish_non_exhaustive()
    }
}
