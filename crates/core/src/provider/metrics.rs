//! The provider's metrics (docs/metrics.md): what became of UnifiedPush messages.

use std::time::Duration;

use metrics::histogram;

use crate::client_link::PushDelivery;
use crate::metric_handles::{CounterSet, HistogramHandle};

static DELIVERIES: CounterSet = CounterSet::new(
    "pushgate_up_deliveries_total",
    &[],
    "outcome",
    &["delivered", "stored", "revoked", "expired", "dropped_ttl0"],
);

static PUSH_IQS: CounterSet = CounterSet::new(
    "pushgate_up_push_iqs_total",
    &[],
    "answer",
    &["delivered", "revoked", "not_delivered"],
);
static PUSH_ROUND_TRIP: HistogramHandle =
    HistogramHandle::new("pushgate_up_push_round_trip_seconds", &[]);

/// A push IQ answered (`delivered`, `revoked`) or not (`not_delivered`, which includes no
/// answer in time and no link) after `round_trip`.
pub(crate) fn push_iq(delivery: &PushDelivery, round_trip: Duration) {
    let answer = match delivery {
        PushDelivery::Delivered => "delivered",
        PushDelivery::Revoked => "revoked",
        PushDelivery::NotDelivered(_) => "not_delivered",
    };
    PUSH_IQS.increment(answer, 1);
    PUSH_ROUND_TRIP.record(round_trip.as_secs_f64());
}

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
