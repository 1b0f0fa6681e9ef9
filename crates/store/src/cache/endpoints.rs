//! What is known about UnifiedPush endpoints' revocations.
//!
//! Revocations are rare and only ever added until they expire, so both answers may be kept: a
//! revocation recorded here is known at once; one recorded by another instance sharing the
//! database is learned when the kept "not revoked" goes stale, or sooner, when the client
//! answers a push with item-not-found again and the revocation is recorded here.

use pushgate_core::{EndpointId, UnixMillis};

use crate::cache::shelf::{Generation, Shelf};

/// One endpoint's state as last learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revocation {
    /// The database had no revocation in force.
    None,
    /// Revoked. `until` is the revocation's expiry when it was recorded here; the database's
    /// answer does not say (it equals the endpoint token's own expiry, after which the token
    /// is refused before any revocation check).
    InForce { until: Option<UnixMillis> },
}

/// Revocation answers by endpoint.
#[derive(Debug)]
pub(crate) struct EndpointCache {
    shelf: Shelf<EndpointId, Revocation>,
}

impl EndpointCache {
    pub(crate) fn new(max_entries: usize, ttl_ms: i64) -> Self {
        Self {
            shelf: Shelf::new(max_entries, ttl_ms),
        }
    }

    /// Whether `endpoint` is revoked at `now`, if known; `cache_now` judges freshness.
    pub(crate) fn is_revoked(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
        cache_now: UnixMillis,
    ) -> Option<bool> {
        self.shelf
            .get(endpoint, cache_now, |revocation| match *revocation {
                Revocation::None => Some(false),
                Revocation::InForce { until: None } => Some(true),
                // Past the expiry recorded here the database decides: another report may
                // have kept it longer.
                Revocation::InForce { until: Some(until) } => (now < until).then_some(true),
            })
    }

    /// Take before reading the database for [`EndpointCache::fill`].
    pub(crate) fn generation(&self) -> Generation {
        self.shelf.generation()
    }

    /// Keeps what the database answered.
    pub(crate) fn fill(
        &self,
        before: Generation,
        endpoint: &EndpointId,
        revoked: bool,
        cache_now: UnixMillis,
    ) {
        let revocation = if revoked {
            Revocation::InForce { until: None }
        } else {
            Revocation::None
        };
        self.shelf
            .fill(before, endpoint.clone(), revocation, cache_now);
    }

    /// A revocation until `expires_at` was just recorded.
    pub(crate) fn revoked(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
        cache_now: UnixMillis,
    ) {
        self.shelf.put(endpoint.clone(), cache_now, |known| {
            // Revoking again never shortens a revocation (the store keeps the later expiry).
            let until = match known {
                Some(Revocation::InForce { until: Some(until) }) => (*until).max(expires_at),
                _ => expires_at,
            };
            Revocation::InForce { until: Some(until) }
        });
    }

    /// Drops what is known about `endpoint` (a write whose outcome is unknown).
    pub(crate) fn forget(&self, endpoint: &EndpointId) {
        self.shelf.invalidate(|contents| contents.remove(endpoint));
    }

    /// Drops stale entries and revocations expired at `now`.
    pub(crate) fn sweep(&self, now: UnixMillis, cache_now: UnixMillis) {
        self.shelf.sweep(cache_now, |revocation| {
            !matches!(revocation, Revocation::InForce { until: Some(until) } if *until <= now)
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.shelf.len()
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.shelf.invalidate(super::shelf::Contents::clear);
    }
}
