//! The store's metrics (docs/metrics.md).

use pushgate_core::metric_handles::CounterSet;

static CACHE_NOTIFICATIONS: CounterSet = CounterSet::new(
    "pushgate_cache_notifications_total",
    &[],
    "event",
    &[
        "sent",
        "send_failed",
        "applied",
        "unreadable",
        "listener_reconnected",
    ],
);

static LINK_LEASE: CounterSet = CounterSet::new(
    "pushgate_link_lease_changes_total",
    &[],
    "event",
    &["acquired", "lost"],
);

static HANDOVERS: CounterSet = CounterSet::new(
    "pushgate_handovers_total",
    &[],
    "outcome",
    &[
        "delivered",
        "revoked",
        "not_delivered",
        "no_holder",
        "timeout",
        "send_failed",
        "too_large",
    ],
);

static PEER_NOTICES: CounterSet = CounterSet::new(
    "pushgate_peer_notices_total",
    &[],
    "event",
    &[
        "handover_served",
        "kept_heard",
        "flush_left_to_another",
        "flush_lock_failed",
        "send_failed",
        "unreadable",
        "listener_reconnected",
    ],
);

static FORWARDED_ANSWERS: CounterSet = CounterSet::new(
    "pushgate_forwarded_answers_total",
    &[],
    "event",
    &[
        "forwarded",
        "owner_gone",
        "too_large",
        "send_failed",
        "unreadable",
        "received",
        "resolved",
        "unknown",
    ],
);

/// The store's counters are served from now on, at 0 until something happens (also where
/// nothing ever will: one instance on SQLite shares no cache and holds no lease).
pub fn serve_store_metrics() {
    CACHE_NOTIFICATIONS.register_all();
    LINK_LEASE.register_all();
    HANDOVERS.register_all();
    PEER_NOTICES.register_all();
    FORWARDED_ANSWERS.register_all();
}

/// This instance talks to the others of its link: their counters are served from now on.
pub(crate) fn peers_started() {
    HANDOVERS.register_all();
    PEER_NOTICES.register_all();
    FORWARDED_ANSWERS.register_all();
}

/// An IQ answer for another instance, or from another instance: `event`.
pub(crate) fn forwarded_answer(event: &'static str) {
    FORWARDED_ANSWERS.increment(event, 1);
}

/// A push this instance handed over ended with `outcome`.
pub(crate) fn handover(outcome: &'static str) {
    HANDOVERS.increment(outcome, 1);
}

/// Something happened on the instances' channels: `event`.
pub(crate) fn peer_notice(event: &'static str) {
    PEER_NOTICES.increment(event, 1);
}

/// The caches of several instances talk: their counters are served from now on, at 0.
pub(crate) fn cache_bus_started() {
    CACHE_NOTIFICATIONS.register_all();
}

/// A cache notification `event`: sent, applied from another instance, and the rest.
pub(crate) fn cache_notification(event: &'static str) {
    CACHE_NOTIFICATIONS.increment(event, 1);
}

/// The link lease of this instance was `acquired` or `lost`.
pub(crate) fn link_lease(event: &'static str) {
    LINK_LEASE.increment(event, 1);
}
