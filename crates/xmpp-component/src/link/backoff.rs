//! Spacing of reconnection attempts: exponential, capped, jittered.

use std::time::Duration;

use crate::config::ReconnectPolicy;

/// Delays between connection attempts of one link.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// The un-jittered delay before the next attempt: `initial * 2^failures`, capped at `max`.
    fn base(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(20)).unwrap_or(u32::MAX);
        self.policy
            .initial
            .saturating_mul(factor)
            .min(self.policy.max)
    }

    /// The delay before the next attempt, jittered into `[base/2, base]` so that many
    /// instances (or links) do not reconnect in lockstep after a server restart.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.base();
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// Back to the first delay, after a session that stayed up long enough.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records how long a session that completed its handshake stayed up: a stable one resets
    /// the backoff, a shorter one leaves it to grow like a failed attempt (a crash loop).
    pub(crate) fn session_ended(&mut self, lasted: Duration) {
        if lasted >= self.policy.stable_after {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn grows_doubles_and_caps_with_jitter() {
        let mut backoff = Backoff::new(policy());
        let mut bases = Vec::new();
        for _ in 0..10 {
            let base = backoff.base();
            let delay = backoff.next_delay();
            assert!(
                delay >= base / 2 && delay <= base,
                "{delay:?} outside [{base:?}/2, {base:?}]"
            );
            bases.push(base.as_millis());
        }
        assert_eq!(
            bases,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn first_retry_is_within_a_second() {
        let mut backoff = Backoff::new(ReconnectPolicy::default());
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn sessions_that_keep_working_are_retried_at_once_however_often_they_drop() {
        let mut backoff = Backoff::new(ReconnectPolicy::default());
        // Two failed attempts, then a session of 2 s, again and again (a link that flaps).
        backoff.next_delay();
        backoff.next_delay();
        for _ in 0..20 {
            backoff.session_ended(Duration::from_secs(2));
            assert!(backoff.next_delay() <= Duration::from_millis(500));
        }
    }

    #[test]
    fn a_crash_loop_backs_off() {
        let mut backoff = Backoff::new(ReconnectPolicy::default());
        let mut bases = Vec::new();
        for _ in 0..5 {
            backoff.session_ended(Duration::from_millis(100));
            bases.push(backoff.base().as_millis());
            backoff.next_delay();
        }
        assert_eq!(bases, [500, 1000, 2000, 4000, 8000]);
    }

    #[test]
    fn only_a_stable_session_resets() {
        let mut backoff = Backoff::new(policy());
        backoff.next_delay();
        backoff.next_delay();
        backoff.session_ended(Duration::from_secs(1));
        assert_eq!(backoff.base(), Duration::from_secs(2));
        backoff.session_ended(Duration::from_secs(31));
        assert_eq!(backoff.base(), Duration::from_millis(500));
    }
}
