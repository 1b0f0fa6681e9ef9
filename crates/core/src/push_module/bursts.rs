//! Coalescing per token: the first publish of a burst is pushed at once; those within
//! `min_interval` of it wait for one push at the end of the interval, which the first of them
//! sends and the rest are answered by at once. Every publish is thus followed by a push sent
//! after it arrived (none is dropped, unlike fpush's rate limit), and a token gets at most two
//! pushes per interval.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::clock::UnixMillis;

/// What one publish does about its push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Push now.
    Now,
    /// Push at this time, for every publish of the burst so far and until then.
    At(UnixMillis),
    /// A push is already planned after this publish: answer at once.
    Planned,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    /// When the last push started.
    last_push: UnixMillis,
    /// Whether a push at the end of the interval is planned.
    planned: bool,
}

/// The recent pushes per token.
pub(crate) struct Bursts {
    tokens: Mutex<HashMap<Box<str>, Burst>>,
    min_interval: UnixMillis,
    max_tokens: usize,
    /// How many tokens make the next sweep of finished bursts, and when the map was last
    /// swept at its limit.
    sweep: Mutex<(usize, UnixMillis)>,
}

/// The fewest tokens that make a sweep worth it.
const MIN_SWEEP: usize = 1024;

impl Bursts {
    pub(crate) fn new(min_interval: UnixMillis, max_tokens: usize) -> Self {
        Self {
            tokens: Mutex::new(HashMap::new()),
            min_interval,
            max_tokens: max_tokens.max(1),
            sweep: Mutex::new((MIN_SWEEP, UnixMillis::MIN)),
        }
    }

    /// What the publish for `key` at `now` does.
    pub(crate) fn turn(&self, key: &str, now: UnixMillis) -> Turn {
        if self.min_interval <= 0 {
            return Turn::Now;
        }
        let mut tokens = lock(&self.tokens);
        if let Some(burst) = tokens.get_mut(key) {
            if burst.planned {
                return Turn::Planned;
            }
            let next = burst.last_push.saturating_add(self.min_interval);
            if now >= next {
                burst.last_push = now;
                return Turn::Now;
            }
            burst.planned = true;
            return Turn::At(next);
        }
        self.sweep(&mut tokens, now);
        // Past the limit a token is pushed without coalescing: tracking it would cost memory
        // an attacker controls, and a push too many is the lesser harm.
        if tokens.len() < self.max_tokens {
            tokens.insert(
                key.into(),
                Burst {
                    last_push: now,
                    planned: false,
                },
            );
        }
        Turn::Now
    }

    /// The planned push for `key` starts at `now`.
    pub(crate) fn planned_push_starts(&self, key: &str, now: UnixMillis) {
        if let Some(burst) = lock(&self.tokens).get_mut(key) {
            burst.planned = false;
            burst.last_push = now;
        }
    }

    /// Tokens tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.tokens).len()
    }

    /// Forgets finished bursts once the map has doubled since the last sweep, so each entry
    /// is looked at a bounded number of times however many tokens come and go; at the limit,
    /// at most once an interval (no burst ends sooner).
    fn sweep(&self, tokens: &mut HashMap<Box<str>, Burst>, now: UnixMillis) {
        let mut sweep = lock(&self.sweep);
        let (sweep_at, last_at_limit) = *sweep;
        let at_limit = tokens.len() >= self.max_tokens;
        let due = if at_limit {
            now >= last_at_limit.saturating_add(self.min_interval)
        } else {
            tokens.len() >= sweep_at
        };
        if !due {
            return;
        }
        let interval = self.min_interval;
        tokens.retain(|_, burst| burst.planned || now < burst.last_push.saturating_add(interval));
        let last_at_limit = if at_limit { now } else { last_at_limit };
        *sweep = ((tokens.len() * 2).max(MIN_SWEEP), last_at_limit);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is a few plain assignments: a panic cannot leave one half-made.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_makes_one_push_now_and_one_at_the_end_of_the_interval() {
        let bursts = Bursts::new(2000, 100);
        assert_eq!(bursts.turn("t", 0), Turn::Now);
        assert_eq!(bursts.turn("t", 100), Turn::At(2000));
        assert_eq!(bursts.turn("t", 500), Turn::Planned);
        assert_eq!(bursts.turn("t", 1999), Turn::Planned);
        bursts.planned_push_starts("t", 2000);
        // The planned push was at 2000: the next interval runs from there.
        assert_eq!(bursts.turn("t", 2500), Turn::At(4000));
        bursts.planned_push_starts("t", 4000);
        assert_eq!(bursts.turn("t", 6001), Turn::Now);
        // Other tokens are not held up.
        assert_eq!(bursts.turn("u", 6002), Turn::Now);
    }

    #[test]
    fn zero_interval_pushes_every_publish() {
        let bursts = Bursts::new(0, 100);
        for now in 0..5 {
            assert_eq!(bursts.turn("t", now), Turn::Now);
        }
        assert_eq!(bursts.len(), 0);
    }

    #[test]
    fn tracked_tokens_stay_bounded_and_finished_bursts_are_swept() {
        let bursts = Bursts::new(1000, 2000);
        for n in 0..10_000 {
            assert_eq!(bursts.turn(&format!("t{n}"), 0), Turn::Now);
        }
        assert_eq!(bursts.len(), 2000, "the limit holds");
        // An hour later every burst is over: the next new token sweeps them out.
        assert_eq!(bursts.turn("late", 3_600_000), Turn::Now);
        assert_eq!(bursts.len(), 1);
    }
}
