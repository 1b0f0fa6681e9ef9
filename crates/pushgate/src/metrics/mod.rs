//! `GET /metrics` in the Prometheus text format, on a listener of its own (`[metrics] listen`),
//! so the public push listener never exposes it. The libraries record through the `metrics`
//! facade; this installs the recorder, adds what only the process knows (build, process,
//! state read from the store) and serves it. docs/metrics.md lists every metric.

mod process;
mod state;

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use pushgate_core::trace::DeliveryTrace;
use tokio_util::sync::CancellationToken;

pub use state::refresh_state;

/// How often the recorder drops stale histogram samples.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Latencies on the wire and inside pushgate: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How long a kept message waited for its client: a second to a week.
const WAITING_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 604_800.0,
];

/// RFC 8030 bodies: up to the 4096 bytes accepted (docs/protocol.md A.3).
const BODY_BUCKETS: &[f64] = &[0.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 3072.0, 4096.0];

/// Every histogram and its buckets; without buckets the exporter would render summaries.
const HISTOGRAMS: &[(&str, &[f64])] = &[
    ("pushgate_up_push_round_trip_seconds", LATENCY_BUCKETS),
    ("pushgate_up_stored_to_delivered_seconds", WAITING_BUCKETS),
    (
        "pushgate_upstream_request_duration_seconds",
        LATENCY_BUCKETS,
    ),
    ("pushgate_upstream_slot_wait_seconds", LATENCY_BUCKETS),
    (
        "pushgate_http_push_request_duration_seconds",
        LATENCY_BUCKETS,
    ),
    ("pushgate_http_push_body_size_bytes", BODY_BUCKETS),
];

/// Installs the process-wide Prometheus recorder that the libraries' `metrics` calls feed,
/// and records what is known from the start.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in HISTOGRAMS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    describe_all();
    metrics::gauge!("pushgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    pushgate_core::metric_handles::LOAD_SHED.register_all();
    pushgate_store::serve_store_metrics();
    process::record_start();
    Ok(handle)
}

/// docs/metrics.md, whose tables are the one list of metrics and their meanings.
const METRICS_DOC: &str = include_str!("../../../../docs/metrics.md");

/// Gives every metric of [`METRICS_DOC`] its `# HELP` text (the table's last column), so the
/// scrape explains itself and `promtool check metrics` finds nothing to say.
fn describe_all() {
    for (name, kind, meaning) in documented(METRICS_DOC) {
        let (name, meaning) = (name.to_owned(), meaning.replace('`', ""));
        match kind {
            "counter" => metrics::describe_counter!(name, meaning),
            "histogram" => metrics::describe_histogram!(name, meaning),
            _ => metrics::describe_gauge!(name, meaning),
        }
    }
}

/// (name, type, meaning) of each table row whose first cell is a metric name in backticks.
fn documented(doc: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    doc.lines().filter_map(|line| {
        let cells: Vec<&str> = line.strip_prefix("| `")?.split(" | ").collect();
        let name = cells.first()?.strip_suffix('`')?;
        if !(name.starts_with("pushgate_") || name.starts_with("process_")) {
            return None;
        }
        let kind = cells.get(1)?.split_whitespace().next()?;
        let meaning = cells.last()?.trim_end_matches(" |").trim();
        Some((name, kind, meaning))
    })
}

/// The `/metrics` route, and `/trace` for `pushgate trace`: both only on the metrics
/// listener, never on the public one.
pub fn metrics_routes(handle: PrometheusHandle, trace: Arc<DeliveryTrace>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(handle)
        .merge(
            Router::new()
                .route("/trace", get(trace_events))
                .with_state(trace),
        )
}

/// `GET /trace?node=NODE` or `?jid=user@domain`: that key's events, oldest first.
async fn trace_events(
    State(trace): State<Arc<DeliveryTrace>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let key = match (query.get("node"), query.get("jid")) {
        (Some(node), None) => trace.node_key(node),
        (None, Some(jid)) => trace.account_key(jid),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "ask for exactly one of node=NODE or jid=user@domain\n",
            )
                .into_response();
        }
    };
    Json(serde_json::json!({ "events": trace.events(&key) })).into_response()
}

async fn render(State(handle): State<PrometheusHandle>) -> Response {
    // A few reads of /proc: cheap enough for every scrape, and then always current.
    process::record();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Runs the recorder's upkeep until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_has_a_type_and_a_meaning() {
        let rows: Vec<_> = documented(METRICS_DOC).collect();
        assert!(rows.len() > 30, "{rows:?}");
        for (name, kind, meaning) in &rows {
            assert!(
                ["counter", "gauge", "histogram"].contains(kind),
                "{name}: {kind}"
            );
            assert!(
                !meaning.is_empty() && !meaning.ends_with('|'),
                "{name}: {meaning}"
            );
            assert_eq!(
                name.ends_with("_total"),
                *kind == "counter",
                "{name} is a {kind}"
            );
        }
        for (name, _) in HISTOGRAMS {
            assert!(
                rows.iter()
                    .any(|(documented, kind, _)| documented == name && *kind == "histogram"),
                "{name}"
            );
        }
    }
}
