//! What the stanzas being handled may hold at once: a number of IQ requests running, a bounded
//! queue of requests waiting for their turn, and the wire bytes of the parsed stanzas whose
//! handlers run or wait.
//!
//! A parsed stanza is a tree a few times its wire size, held until its handler answers. Counting
//! requests alone let a few hundred large hostile requests hold gigabytes; counting their bytes
//! too bounds that whatever the handlers wait on. A burst over the running limit waits in the
//! queue instead of being refused: neither Prosody nor ejabberd sends a refused publish again,
//! so a refusal is a lost wake-up.

use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ComponentConfig;

/// Bytes are counted in units of this many, so that any size fits a semaphore's `u32`.
const UNIT: usize = 1024;

/// The shared bounds of one link's handlers (they outlive its sessions).
#[derive(Clone)]
pub(crate) struct RequestBudget {
    running: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    units: Arc<Semaphore>,
    total_units: u32,
    queue_wait: Duration,
    in_flight: Gauge,
}

/// One request counted in the in-flight gauge until dropped.
struct InFlight(Gauge);

impl InFlight {
    fn new(gauge: &Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What one handled stanza holds of the budget; released on drop.
pub(crate) struct Held {
    _running: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
    _in_flight: InFlight,
}

/// A request admitted to the queue: it holds its bytes and a place in the queue, and waits for
/// its turn to run.
pub(crate) struct Queued {
    place: OwnedSemaphorePermit,
    bytes: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
    wait: Duration,
    in_flight: InFlight,
}

/// How a request was admitted.
pub(crate) enum Admission {
    /// It runs now.
    Now(Held),
    /// It waits for its turn ([`Queued::turn`]).
    Queued(Queued),
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The parsed requests in flight already hold `max_request_bytes_in_flight`.
    BytesInFlight,
    /// The queue of waiting requests is full.
    QueueFull,
}

impl Refusal {
    /// The `reason` of the refusal and load-shedding metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::BytesInFlight => "iq_bytes_in_flight",
            Self::QueueFull => "iq_queue_full",
        }
    }

    /// A short label for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BytesInFlight => "bytes in flight",
            Self::QueueFull => "queue full",
        }
    }
}

impl Queued {
    /// Waits for a turn to run, at most the queue wait; `None` when it did not come in time.
    pub(crate) async fn turn(self) -> Option<Held> {
        let running = tokio::time::timeout(self.wait, self.running.acquire_owned())
            .await
            .ok()?
            .ok()?;
        drop(self.place);
        Some(Held {
            _running: running,
            _bytes: self.bytes,
            _in_flight: self.in_flight,
        })
    }
}

impl RequestBudget {
    pub(crate) fn new(config: &ComponentConfig) -> Self {
        let total_units = u32::try_from(config.max_request_bytes_in_flight.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            running: Arc::new(Semaphore::new(config.max_concurrent_iqs)),
            queue: Arc::new(Semaphore::new(config.max_queued_iqs)),
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            queue_wait: config.iq_queue_wait,
            in_flight: crate::metrics::iqs_in_flight(&config.jid),
        }
    }

    /// The units `wire_bytes` take; a stanza larger than the whole budget takes all of it.
    fn units_of(&self, wire_bytes: usize) -> u32 {
        u32::try_from(wire_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.total_units)
    }

    /// Admits an IQ request of `wire_bytes` (0 for one read without a tree): to run now, to
    /// wait in the queue, or not at all.
    pub(crate) fn admit(&self, wire_bytes: usize) -> Result<Admission, Refusal> {
        let bytes = Arc::clone(&self.units)
            .try_acquire_many_owned(self.units_of(wire_bytes))
            .map_err(|_| Refusal::BytesInFlight)?;
        if let Ok(running) = Arc::clone(&self.running).try_acquire_owned() {
            return Ok(Admission::Now(Held {
                _running: running,
                _bytes: bytes,
                _in_flight: InFlight::new(&self.in_flight),
            }));
        }
        let place = Arc::clone(&self.queue)
            .try_acquire_owned()
            .map_err(|_| Refusal::QueueFull)?;
        Ok(Admission::Queued(Queued {
            place,
            bytes,
            running: Arc::clone(&self.running),
            wait: self.queue_wait,
            in_flight: InFlight::new(&self.in_flight),
        }))
    }

    /// Room for a message or presence of `wire_bytes`, waited for: the reader slows down
    /// instead of dropping it. `None` only if the budget was closed.
    pub(crate) async fn wait_for(&self, wire_bytes: usize) -> Option<Held> {
        let running = Arc::clone(&self.running).acquire_owned().await.ok()?;
        let bytes = Arc::clone(&self.units)
            .acquire_many_owned(self.units_of(wire_bytes))
            .await
            .ok()?;
        Some(Held {
            _running: running,
            _bytes: bytes,
            _in_flight: InFlight::new(&self.in_flight),
        })
    }

    /// Units free now (for tests).
    #[cfg(test)]
    fn free_units(&self) -> usize {
        self.units.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(running: usize, queued: usize, bytes: usize) -> RequestBudget {
        let mut config = ComponentConfig::new("push.example.test", "127.0.0.1", 5347, "s");
        config.max_concurrent_iqs = running;
        config.max_queued_iqs = queued;
        config.max_request_bytes_in_flight = bytes;
        config.iq_queue_wait = Duration::from_millis(100);
        RequestBudget::new(&config)
    }

    fn runs_now(admission: Result<Admission, Refusal>) -> Option<Held> {
        match admission {
            Ok(Admission::Now(held)) => Some(held),
            _ => None,
        }
    }

    #[test]
    fn bytes_bound_requests_before_their_count_does() {
        let budget = budget(100, 0, 10 * 1024);
        let first = runs_now(budget.admit(6 * 1024));
        assert!(first.is_some());
        // 6 KiB held, 4 KiB left: a 5 KiB request does not fit, a 4 KiB one does.
        assert_eq!(budget.admit(5 * 1024).err(), Some(Refusal::BytesInFlight));
        let second = runs_now(budget.admit(4 * 1024));
        assert!(second.is_some());
        assert_eq!(budget.free_units(), 0);
        drop(first);
        assert_eq!(budget.free_units(), 6);
        assert!(runs_now(budget.admit(5 * 1024)).is_some());
    }

    #[test]
    fn a_request_read_without_a_tree_holds_no_bytes() {
        let budget = budget(10, 0, 1024);
        let held: Vec<_> = (0..10).filter_map(|_| runs_now(budget.admit(0))).collect();
        assert_eq!(held.len(), 10);
        assert_eq!(budget.free_units(), 1);
    }

    #[test]
    fn a_stanza_larger_than_the_budget_takes_all_of_it_and_no_more() {
        let budget = budget(10, 0, 4096);
        let all = runs_now(budget.admit(1 << 30));
        assert!(all.is_some());
        assert_eq!(budget.admit(1).err(), Some(Refusal::BytesInFlight));
        drop(all);
        assert_eq!(budget.free_units(), 4);
    }

    #[tokio::test]
    async fn past_the_running_limit_requests_wait_in_a_bounded_queue() {
        let budget = budget(1, 2, 1 << 20);
        let running = runs_now(budget.admit(10));
        assert!(running.is_some());
        let Ok(Admission::Queued(first)) = budget.admit(10) else {
            panic!("not queued");
        };
        let Ok(Admission::Queued(second)) = budget.admit(10) else {
            panic!("not queued");
        };
        assert_eq!(budget.admit(10).err(), Some(Refusal::QueueFull));
        // The first in the queue runs as soon as the running one is done.
        drop(running);
        let first = first.turn().await;
        assert!(first.is_some());
        // Its place in the queue is free again; the second times out behind it.
        assert!(matches!(budget.admit(10), Ok(Admission::Queued(_))));
        assert!(second.turn().await.is_none());
    }
}
