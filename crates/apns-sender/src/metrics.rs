//! The APNs sender's metrics (docs/metrics.md), under the upstream names shared with FCM and
//! labelled `service="apns"`.

use std::time::Duration;

use metrics::{counter, gauge};
use pushgate_core::metric_handles::{CounterSet, HistogramHandle};

const SERVICE: &str = "apns";

static REQUESTS: CounterSet = CounterSet::new(
    "pushgate_upstream_requests_total",
    &[("service", SERVICE)],
    "outcome",
    &[
        "success",
        "dead_token",
        "auth_error",
        "rate_limited",
        "server_error",
        "rejected",
        "timeout",
        "transport",
    ],
);
static DURATION: HistogramHandle = HistogramHandle::new(
    "pushgate_upstream_request_duration_seconds",
    &[("service", SERVICE)],
);
static WAKES: CounterSet = CounterSet::new(
    "pushgate_wakes_total",
    &[("service", SERVICE)],
    "outcome",
    &["accepted", "token_dead", "transient", "rejected"],
);

/// A request to APNs ended with `outcome`.
pub(crate) fn request(outcome: &'static str) {
    REQUESTS.increment(outcome, 1);
}

/// A request to APNs ended with `outcome`, `took` after its attempt began.
pub(crate) fn answered(outcome: &'static str, took: Duration) {
    request(outcome);
    DURATION.record(took.as_secs_f64());
}

/// A wake-up (every try of it) ended with `outcome`.
pub(crate) fn wake(outcome: &'static str) {
    WAKES.increment(outcome, 1);
}

/// The sender exists: its counters are served from now on, at 0 until something happens.
pub(crate) fn start() {
    counter!("pushgate_upstream_retries_total", "service" => SERVICE).increment(0);
}

/// A wake-up is tried once more.
pub(crate) fn retry() {
    counter!("pushgate_upstream_retries_total", "service" => SERVICE).increment(1);
}

/// A provider token was signed; APNs takes it until `expires_at` (Unix seconds).
pub(crate) fn token_signed(expires_at: u64) {
    counter!("pushgate_upstream_token_refreshes_total", "service" => SERVICE, "outcome" => "ok")
        .increment(1);
    gauge!("pushgate_upstream_credential_expiry_timestamp_seconds", "service" => SERVICE)
        .set(expires_at as f64);
}
