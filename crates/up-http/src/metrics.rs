//! The HTTP side's metrics (docs/metrics.md): RFC 8030 requests (what the listener sheds is
//! counted in `pushgate_core::metric_handles::LOAD_SHED`).

use std::time::Duration;

use axum::http::StatusCode;
use pushgate_core::metric_handles::{CounterSet, HistogramHandle};

static REQUESTS: CounterSet = CounterSet::new(
    "pushgate_http_push_requests_total",
    &[],
    "code",
    &["201", "400", "404", "408", "413", "429", "503"],
);
static DURATION: HistogramHandle =
    HistogramHandle::new("pushgate_http_push_request_duration_seconds", &[]);
static BODY_SIZE: HistogramHandle = HistogramHandle::new("pushgate_http_push_body_size_bytes", &[]);

/// A request to `/push/…` answered `status` after `took`.
pub(crate) fn push_request(status: StatusCode, took: Duration) {
    REQUESTS.increment(code(status), 1);
    DURATION.record(took.as_secs_f64());
}

static NOTIFIES: CounterSet = CounterSet::new(
    "pushgate_matrix_notifies_total",
    &[],
    "outcome",
    &[
        "ok",
        "bad_json",
        "too_large",
        "rate_limited",
        "method_not_allowed",
    ],
);
static REJECTED_PUSHKEYS: CounterSet = CounterSet::new(
    "pushgate_matrix_rejected_pushkeys_total",
    &[],
    "reason",
    &["foreign", "not_found", "too_large"],
);

/// The Matrix gateway is served: its counters are served from now on, at 0.
pub(crate) fn matrix_gateway_served() {
    NOTIFIES.register_all();
    REJECTED_PUSHKEYS.register_all();
}

/// A Matrix `notify` answered with `outcome`.
pub(crate) fn notify(outcome: &'static str) {
    NOTIFIES.increment(outcome, 1);
}

/// A pushkey of a `notify` rejected for `reason`.
pub(crate) fn rejected_pushkey(reason: &'static str) {
    REJECTED_PUSHKEYS.increment(reason, 1);
}

/// A push message's body was read whole: `bytes` long.
pub(crate) fn push_body(bytes: usize) {
    BODY_SIZE.record(bytes as f64);
}

/// The status as a label from a closed set: the codes this listener answers, else `other`.
fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        410 => "410",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}
