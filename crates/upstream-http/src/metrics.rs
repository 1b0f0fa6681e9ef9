//! The transport's metrics (docs/metrics.md), labelled with the service the caller named
//! (`fcm`, `apns`), not with this crate's name.

use std::time::Duration;

use metrics::{Gauge, Histogram, counter, gauge, histogram};

/// The metric handles of one upstream, looked up once.
#[derive(Debug)]
pub(crate) struct Metrics {
    service: &'static str,
    in_flight: Gauge,
    slot_wait: Histogram,
}

impl Metrics {
    pub(crate) fn new(service: &'static str) -> Self {
        // Served from the start at 0, not only after the first resend.
        counter!("pushgate_upstream_resends_total", "service" => service).increment(0);
        Self {
            service,
            in_flight: gauge!("pushgate_upstream_requests_in_flight", "service" => service),
            slot_wait: histogram!("pushgate_upstream_slot_wait_seconds", "service" => service),
        }
    }

    /// One connection attempt ended with `result` (`ok`, `error`, `http1`); `version` is
    /// what was tried.
    pub(crate) fn connect(&self, version: &'static str, result: &'static str) {
        counter!(
            "pushgate_upstream_connects_total",
            "service" => self.service,
            "version" => version,
            "result" => result
        )
        .increment(1);
    }

    /// `count` HTTP/2 connections are open now.
    pub(crate) fn http2_connections(&self, count: usize) {
        gauge!("pushgate_upstream_connections", "service" => self.service, "version" => "2")
            .set(count as f64);
    }

    /// `count` HTTP/1.1 connections are open now.
    pub(crate) fn http1_connections(&self, count: usize) {
        gauge!(
            "pushgate_upstream_connections",
            "service" => self.service,
            "version" => "1.1"
        )
        .set(count as f64);
    }

    /// A request the server cannot have acted on was sent once more.
    pub(crate) fn resent(&self) {
        counter!("pushgate_upstream_resends_total", "service" => self.service).increment(1);
    }

    /// A request found every slot taken and got one after `waited`.
    pub(crate) fn slot_waited(&self, waited: Duration) {
        self.slot_wait.record(waited.as_secs_f64());
    }

    /// A request is on the wire until the returned guard is dropped. (Its duration is the
    /// caller's to record: the caller knows its outcome, and a request future stays small.)
    pub(crate) fn request_started(&self) -> RequestInFlight<'_> {
        self.in_flight.increment(1.0);
        RequestInFlight { metrics: self }
    }
}

/// A request on the wire; see [`Metrics::request_started`].
pub(crate) struct RequestInFlight<'a> {
    metrics: &'a Metrics,
}

impl Drop for RequestInFlight<'_> {
    fn drop(&mut self) {
        // A request cut off by its caller's deadline ends here too.
        self.metrics.in_flight.decrement(1.0);
    }
}
