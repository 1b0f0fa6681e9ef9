//! How often and how soon a failed send is tried again: exponential backoff with jitter, all
//! inside the one deadline of a wake-up. The senders (FCM, APNs) share it.

use std::time::Duration;

/// The retry schedule for answers worth another try (5xx, FCM's `QUOTA_EXCEEDED`/429, APNs'
/// `Shutdown`, broken connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The most sends per wake-up, the first included (so 1 never retries).
    pub max_attempts: u32,
    /// The pause before the first retry; each further one doubles it.
    pub first_backoff: Duration,
    /// The longest pause between two tries (a `Retry-After` may ask for longer).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Four sends, as the Firebase Admin SDK that p2 uses (docs/protocol.md B §1.6), but with
    /// pauses short enough for a wake-up's deadline.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1 for the first), between half and all of the
    /// exponential step, so that wake-ups failing together do not come back together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(16);
        let step = self
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        step / 2 + step.mul_f64(rand::random::<f64>() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy::default();
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let second = policy.backoff(2);
            assert!(second >= Duration::from_millis(200) && second <= Duration::from_millis(400));
            let late = policy.backoff(40);
            assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        }
    }
}
