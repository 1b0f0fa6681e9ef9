//! The transport's metrics, labelled with the service the caller named (`fcm`, `apns`), not
//! with this crate's name. The names from before this crate, `pushgate_{service}_…`, are kept
//! alongside while dashboards and docs use them.

/// The metric names and the label of one upstream.
#[derive(Debug)]
pub(crate) struct Metrics {
    service: &'static str,
    /// `pushgate_{service}_connections` (HTTP/2 connections; in docs/configuration.md).
    service_connections: String,
    /// `pushgate_{service}_connects_total`, likewise.
    service_connects: String,
}

impl Metrics {
    pub(crate) fn new(service: &'static str) -> Self {
        Self {
            service,
            service_connections: format!("pushgate_{service}_connections"),
            service_connects: format!("pushgate_{service}_connects_total"),
        }
    }

    /// One connection attempt ended with `result` (`ok`, `error`, `http1`); `version` is
    /// what was tried.
    pub(crate) fn connect(&self, version: &'static str, result: &'static str) {
        metrics::counter!(
            "pushgate_upstream_connects_total",
            "service" => self.service,
            "version" => version,
            "result" => result
        )
        .increment(1);
        let result = if result == "error" { "error" } else { "ok" };
        metrics::counter!(self.service_connects.clone(), "result" => result).increment(1);
    }

    /// `count` HTTP/2 connections are open now.
    pub(crate) fn http2_connections(&self, count: usize) {
        let count = count as f64;
        metrics::gauge!("pushgate_upstream_connections", "service" => self.service, "version" => "2")
            .set(count);
        metrics::gauge!(self.service_connections.clone()).set(count);
    }

    /// `count` HTTP/1.1 connections are open now.
    pub(crate) fn http1_connections(&self, count: usize) {
        metrics::gauge!(
            "pushgate_upstream_connections",
            "service" => self.service,
            "version" => "1.1"
        )
        .set(count as f64);
    }

    /// A request the server cannot have acted on was sent once more.
    pub(crate) fn resent(&self) {
        metrics::counter!("pushgate_upstream_resends_total", "service" => self.service)
            .increment(1);
    }
}
