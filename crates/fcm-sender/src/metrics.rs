//! The FCM sender's metrics (docs/metrics.md), under the upstream names shared with APNs and
//! labelled `service="fcm"`.

use std::time::Duration;

use metrics::{counter, gauge};
use pushgate_core::metric_handles::{CounterSet, HistogramHandle};
use pushgate_upstream_http::{UpstreamError, UpstreamResponse};

const SERVICE: &str = "fcm";

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

/// The `outcome` of one request to FCM, from its answer (a closed set).
pub(crate) fn request_outcome(answer: &Result<UpstreamResponse, UpstreamError>) -> &'static str {
    match answer {
        Ok(answer) => status_outcome(answer.status.as_u16()),
        Err(
            UpstreamError::BodyTooLarge { status, .. } | UpstreamError::BodyBroken { status, .. },
        ) => status_outcome(status.as_u16()),
        Err(UpstreamError::TimedOut) => "timeout",
        Err(_) => "transport",
    }
}

/// FCM HTTP v1's statuses: 404 is `UNREGISTERED`, 400 `INVALID_ARGUMENT`, 403
/// `SENDER_ID_MISMATCH` or `THIRD_PARTY_AUTH_ERROR`, 429 `QUOTA_EXCEEDED`.
fn status_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        404 => "dead_token",
        401 | 403 => "auth_error",
        429 => "rate_limited",
        500..=599 => "server_error",
        _ => "rejected",
    }
}

/// A request to FCM ended with `outcome`.
pub(crate) fn request(outcome: &'static str) {
    REQUESTS.increment(outcome, 1);
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

/// The OAuth2 token endpoint was asked for a token: `ok` or `error`.
pub(crate) fn token_refresh(outcome: &'static str) {
    counter!("pushgate_upstream_token_refreshes_total", "service" => SERVICE, "outcome" => outcome)
        .increment(1);
}

/// The credential in use expires at `unix_seconds`.
pub(crate) fn credential_expiry(unix_seconds: f64) {
    gauge!("pushgate_upstream_credential_expiry_timestamp_seconds", "service" => SERVICE)
        .set(unix_seconds);
}

/// A request to FCM was answered (or failed on the wire) `took` after its attempt began.
pub(crate) fn answered(answer: &Result<UpstreamResponse, UpstreamError>, took: Duration) {
    request(request_outcome(answer));
    DURATION.record(took.as_secs_f64());
}
