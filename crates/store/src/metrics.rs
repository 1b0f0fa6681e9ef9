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

/// The store's counters are served from now on, at 0 until something happens (also where
/// nothing ever will: one instance on SQLite shares no cache and holds no lease).
pub fn serve_store_metrics() {
    CACHE_NOTIFICATIONS.register_all();
    LINK_LEASE.register_all();
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
