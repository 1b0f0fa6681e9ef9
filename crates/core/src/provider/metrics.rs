//! The provider's metrics (docs/metrics.md): what became of UnifiedPush messages.

use metrics::histogram;

use crate::metric_handles::CounterSet;

static DELIVERIES: CounterSet = CounterSet::new(
    "pushgate_up_deliveries_total",
    &[],
    "outcome",
    &["delivered", "stored", "revoked", "expired", "dropped_ttl0"],
);

/// What became of a message: `delivered`, `stored`, `revoked`, `expired`, `dropped_ttl0`
/// (the store reports `replaced_topic` itself, as only its transaction knows).
pub(crate) fn delivery(outcome: &'static str, messages: u64) {
    if messages > 0 {
        DELIVERIES.increment(outcome, messages);
    }
}

/// A kept message reached its client `millis` after it was received.
pub(crate) fn stored_to_delivered(millis: i64) {
    histogram!("pushgate_up_stored_to_delivered_seconds").record(millis.max(0) as f64 / 1000.0);
}
