//! What the stanzas being handled may hold at once: a number of IQ requests, and the wire
//! bytes of the parsed stanzas whose handlers run.
//!
//! A parsed stanza is a tree a few times its wire size, held until its handler answers. Counting
//! requests alone let a few hundred large hostile requests hold gigabytes; counting their bytes
//! too bounds that whatever the handlers wait on.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ComponentConfig;

/// Bytes are counted in units of this many, so that any size fits a semaphore's `u32`.
const UNIT: usize = 1024;

/// The shared bounds of one link's handlers (they outlive its sessions).
#[derive(Clone)]
pub(crate) struct RequestBudget {
    requests: Arc<Semaphore>,
    units: Arc<Semaphore>,
    total_units: u32,
}

/// What one handled stanza holds of the budget; released on drop.
pub(crate) struct Held {
    _request: Option<OwnedSemaphorePermit>,
    _bytes: OwnedSemaphorePermit,
}

impl RequestBudget {
    pub(crate) fn new(config: &ComponentConfig) -> Self {
        let total_units = u32::try_from(config.max_request_bytes_in_flight.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            requests: Arc::new(Semaphore::new(config.max_concurrent_iqs)),
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// The units `wire_bytes` take; a stanza larger than the whole budget takes all of it.
    fn units_of(&self, wire_bytes: usize) -> u32 {
        u32::try_from(wire_bytes.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total_units)
    }

    /// Room for one more IQ request of `wire_bytes`, now or never (the caller refuses it).
    pub(crate) fn try_request(&self, wire_bytes: usize) -> Option<Held> {
        let request = Arc::clone(&self.requests).try_acquire_owned().ok()?;
        let bytes = Arc::clone(&self.units)
            .try_acquire_many_owned(self.units_of(wire_bytes))
            .ok()?;
        Some(Held {
            _request: Some(request),
            _bytes: bytes,
        })
    }

    /// Room for a message or presence of `wire_bytes`, waited for: the reader slows down
    /// instead of dropping it. `None` only if the budget was closed.
    pub(crate) async fn wait_for(&self, wire_bytes: usize) -> Option<Held> {
        let request = Arc::clone(&self.requests).acquire_owned().await.ok()?;
        let bytes = Arc::clone(&self.units)
            .acquire_many_owned(self.units_of(wire_bytes))
            .await
            .ok()?;
        Some(Held {
            _request: Some(request),
            _bytes: bytes,
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

    fn budget(requests: usize, bytes: usize) -> RequestBudget {
        let mut config = ComponentConfig::new("push.example.test", "127.0.0.1", 5347, "s");
        config.max_concurrent_iqs = requests;
        config.max_request_bytes_in_flight = bytes;
        RequestBudget::new(&config)
    }

    #[test]
    fn bytes_bound_requests_before_their_count_does() {
        let budget = budget(100, 10 * 1024);
        let first = budget.try_request(6 * 1024);
        assert!(first.is_some());
        // 6 KiB held, 4 KiB left: a 5 KiB request does not fit, a 4 KiB one does.
        assert!(budget.try_request(5 * 1024).is_none());
        let second = budget.try_request(4 * 1024);
        assert!(second.is_some());
        assert_eq!(budget.free_units(), 0);
        drop(first);
        assert_eq!(budget.free_units(), 6);
        assert!(budget.try_request(5 * 1024).is_some());
    }

    #[test]
    fn the_count_still_bounds_small_requests() {
        let budget = budget(2, 1024 * 1024);
        let held: Vec<_> = (0..2).filter_map(|_| budget.try_request(10)).collect();
        assert_eq!(held.len(), 2);
        assert!(budget.try_request(10).is_none());
    }

    #[test]
    fn a_stanza_larger_than_the_budget_takes_all_of_it_and_no_more() {
        let budget = budget(10, 4096);
        let all = budget.try_request(1 << 30);
        assert!(all.is_some());
        assert!(budget.try_request(1).is_none());
        drop(all);
        assert_eq!(budget.free_units(), 4);
    }
}
