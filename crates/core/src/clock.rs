//! Time as the services see it: an explicit clock, so tests can set it.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the one time unit stored and compared everywhere.
pub type UnixMillis = i64;

/// Where the services read the current time from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> UnixMillis;
}

/// How the services wait: the runtime's timer, so that core needs no runtime of its own.
pub trait Sleeper: Send + Sync + 'static {
    /// A future that is ready `duration` from now.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            // A clock before 1970 is a broken machine; 0 keeps every comparison defined.
            .unwrap_or(0)
    }
}

/// A clock that stands still until told otherwise (tests, replays).
#[derive(Debug, Default)]
pub struct FixedClock(std::sync::atomic::AtomicI64);

impl FixedClock {
    /// A clock showing `now`.
    pub fn new(now: UnixMillis) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: UnixMillis) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.0
            .fetch_add(millis, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixMillis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800_000);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::new(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(500);
        assert_eq!(clock.now(), 1_500);
        clock.set(7);
        assert_eq!(clock.now(), 7);
    }
}
