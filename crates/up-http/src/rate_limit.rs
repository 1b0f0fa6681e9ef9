//! Rate limits on pushes (docs/protocol.md A.3: over the per-endpoint or per-client rate → 429 with
//! `Retry-After`): GCRA through `governor`, one state per key, in a map of bounded size.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::{Quota, RateLimiter};

/// A sustained rate with a burst allowance: on average `requests` per `per`, and up to `burst`
/// at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// How many requests are allowed per `per`, on average.
    pub requests: NonZeroU32,
    /// The period `requests` refers to.
    pub per: Duration,
    /// How many requests may come at once.
    pub burst: NonZeroU32,
}

impl Rate {
    /// `requests` per second on average, up to `burst` at once.
    pub const fn per_second(requests: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(1),
            burst,
        }
    }

    /// The governor quota, or `None` when the rate is too fast to express (one request per
    /// less than a nanosecond) or `per` is zero.
    pub(crate) fn quota(&self) -> Option<Quota> {
        let period = self.per.checked_div(self.requests.get())?;
        Quota::with_period(period).map(|quota| quota.allow_burst(self.burst))
    }
}

/// The two push rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Per endpoint (token). Default 10/s, burst 50: a phone is not helped by more, and a
    /// chatty application server still gets through a burst of notifications.
    pub per_endpoint: Rate,
    /// Per client address (the application server). Default 100/s, burst 500: a large
    /// server fans out to many endpoints at once.
    pub per_client: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_endpoint: Rate::per_second(nonzero(10), nonzero(50)),
            per_client: Rate::per_second(nonzero(100), nonzero(500)),
        }
    }
}

fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

/// How many keys one limiter tracks at most. A key costs a few dozen bytes; stale keys are
/// purged every [`PURGE_INTERVAL`], so only a flood of distinct keys within one burst window
/// reaches this.
pub(crate) const MAX_TRACKED_KEYS: usize = 100_000;

/// How often keys whose state is as good as fresh are dropped.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// One rate per key, with the map of keys kept small: keys that are as good as fresh are
/// purged periodically, and a map that still fills up starts over.
pub(crate) struct KeyedLimit<K: Hash + Eq + Clone, C: Clock = MonotonicClock> {
    limiter: RateLimiter<K, BoundedStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    /// Nanoseconds since `start` at which the next purge is due.
    next_purge: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// A limit of `quota` per key on the monotonic clock.
    pub(crate) fn new(quota: Quota, max_keys: usize) -> Self {
        Self::with_clock(quota, max_keys, MonotonicClock)
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimit<K, C> {
    /// A limit of `quota` per key, tracking at most `max_keys` keys, on `clock`.
    pub(crate) fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        let store = BoundedStateStore {
            states: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        };
        let start = clock.now();
        Self {
            limiter: RateLimiter::new(quota, store, clock.clone()),
            clock,
            start,
            next_purge: AtomicU64::new(nanos(PURGE_INTERVAL)),
        }
    }

    /// Counts one request for `key`: `Ok` if it is within the rate, else how long until the
    /// next one would be.
    pub(crate) fn check(&self, key: &K) -> Result<(), Duration> {
        self.purge_if_due();
        match self.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// How many keys are tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.limiter.len()
    }

    fn purge_if_due(&self) {
        let elapsed = self.clock.now().duration_since(self.start).as_u64();
        let due = self.next_purge.load(Ordering::Relaxed);
        // One request wins the exchange and purges; the others go on at once.
        if elapsed >= due
            && self
                .next_purge
                .compare_exchange(
                    due,
                    elapsed.saturating_add(nanos(PURGE_INTERVAL)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Theoretical arrival times (GCRA) per key, at most `max_keys` of them.
struct BoundedStateStore<K> {
    states: Mutex<HashMap<K, Nanos>>,
    max_keys: usize,
}

impl<K> BoundedStateStore<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Nanos>> {
        // The map holds plain numbers: a panic elsewhere cannot leave it half-updated.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStateStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut states = self.lock();
        if let Some(state) = states.get_mut(key) {
            let (outcome, next) = f(Some(*state))?;
            *state = next;
            return Ok(outcome);
        }
        let (outcome, next) = f(None)?;
        if states.len() >= self.max_keys {
            // Only a flood of distinct keys within one burst window gets here, since stale
            // keys are purged regularly. Starting over lets every key through once more, which
            // beats both unbounded memory and refusing every newcomer.
            tracing::warn!(
                keys = states.len(),
                "rate limiter full: starting over with an empty map"
            );
            states.clear();
        }
        states.insert(key.clone(), next);
        Ok(outcome)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStateStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        // governor's own stores drop a state whose arrival time is at or below the mark.
        self.lock().retain(|_, arrival| *arrival > drop_below);
    }

    fn shrink_to_fit(&self) {
        let mut states = self.lock();
        // Shrinking reallocates; only worth it once most of the space is unused.
        if states.capacity() > 4 * states.len().max(1024) {
            states.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limit(
        rate: Rate,
        max_keys: usize,
    ) -> (KeyedLimit<u32, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = rate.quota().expect("quota");
        (
            KeyedLimit::with_clock(quota, max_keys, clock.clone()),
            clock,
        )
    }

    #[test]
    fn a_burst_then_the_sustained_rate_per_key() {
        let (limit, clock) = limit(Rate::per_second(nonzero(2), nonzero(3)), 100);
        for _ in 0..3 {
            assert_eq!(limit.check(&1), Ok(()));
        }
        assert_eq!(limit.check(&1), Err(Duration::from_millis(500)));
        assert_eq!(limit.check(&2), Ok(()), "another key has its own burst");
        clock.advance(Duration::from_millis(500));
        assert_eq!(limit.check(&1), Ok(()));
        assert!(limit.check(&1).is_err());
    }

    #[test]
    fn stale_keys_are_purged() {
        let (limit, clock) = limit(Rate::per_second(nonzero(10), nonzero(10)), 1000);
        for key in 0..500 {
            assert_eq!(limit.check(&key), Ok(()));
        }
        assert_eq!(limit.tracked(), 500);
        clock.advance(PURGE_INTERVAL);
        assert_eq!(limit.check(&9999), Ok(()));
        assert_eq!(limit.tracked(), 1, "only the key just used is left");
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let (limit, _clock) = limit(Rate::per_second(nonzero(1), nonzero(1)), 100);
        for key in 0..1000 {
            assert_eq!(limit.check(&key), Ok(()));
            assert!(limit.tracked() <= 100);
        }
    }

    #[test]
    fn rates_that_cannot_be_expressed_have_no_quota() {
        let zero = Rate {
            per: Duration::ZERO,
            ..Rate::per_second(nonzero(1), nonzero(1))
        };
        assert!(zero.quota().is_none());
        let too_fast = Rate {
            requests: nonzero(u32::MAX),
            per: Duration::from_nanos(1),
            burst: nonzero(1),
        };
        assert!(too_fast.quota().is_none());
        assert!(RateLimits::default().per_client.quota().is_some());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
