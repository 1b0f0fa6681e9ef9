//! Metric handles looked up once. `metrics::counter!` finds its series in the recorder's
//! registry on every call (a hash of the name and labels, a map lookup); on the paths that run
//! once per wake-up or push, a handle kept per label value saves that.
//!
//! A handle made before the process installs its recorder records nothing, so these are made
//! at first use, which comes after `serve` installed it.

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Label};

/// `pushgate_load_shed_total{reason}`: work refused because a limit was reached. Every crate
/// with a limit counts here, so the reasons (docs/metrics.md's closed set) are listed once.
pub static LOAD_SHED: CounterSet = CounterSet::new(
    "pushgate_load_shed_total",
    &[],
    "reason",
    &[
        "iq_queue_full",
        "iq_queue_wait",
        "iq_bytes_in_flight",
        "rate_limited_client",
        "rate_limited_endpoint",
        "owner_full",
        "store_full",
        "http_connections_per_address",
    ],
);

/// The counters of one metric for a closed set of values of one label (and fixed labels).
pub struct CounterSet {
    name: &'static str,
    fixed: &'static [(&'static str, &'static str)],
    label: &'static str,
    values: &'static [&'static str],
    handles: OnceLock<Vec<Counter>>,
}

impl CounterSet {
    /// `name{fixed…, label=value}` for each of `values`.
    pub const fn new(
        name: &'static str,
        fixed: &'static [(&'static str, &'static str)],
        label: &'static str,
        values: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            fixed,
            label,
            values,
            handles: OnceLock::new(),
        }
    }

    /// Adds `by` to the counter of `value`; a value outside the set is looked up each time.
    pub fn increment(&self, value: &'static str, by: u64) {
        let handles = self.handles.get_or_init(|| {
            self.values
                .iter()
                .map(|value| self.counter(value))
                .collect()
        });
        match self.values.iter().position(|known| *known == value) {
            Some(index) => handles[index].increment(by),
            None => self.counter(value).increment(by),
        }
    }

    /// Serves every value's series from now on, at 0 until it happens: a rate over a series
    /// that appears only with its first event misses that event.
    pub fn register_all(&self) {
        for value in self.values {
            self.increment(value, 0);
        }
    }

    fn counter(&self, value: &'static str) -> Counter {
        let mut labels: Vec<Label> = self
            .fixed
            .iter()
            .map(|(key, value)| Label::from_static_parts(key, value))
            .collect();
        labels.push(Label::from_static_parts(self.label, value));
        metrics::counter!(self.name, labels)
    }
}

/// One histogram series (a name and fixed labels), looked up once.
pub struct HistogramHandle {
    name: &'static str,
    fixed: &'static [(&'static str, &'static str)],
    handle: OnceLock<Histogram>,
}

impl HistogramHandle {
    /// `name{fixed…}`.
    pub const fn new(name: &'static str, fixed: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            fixed,
            handle: OnceLock::new(),
        }
    }

    /// Records `value`.
    pub fn record(&self, value: f64) {
        self.handle
            .get_or_init(|| {
                let labels: Vec<Label> = self
                    .fixed
                    .iter()
                    .map(|(key, value)| Label::from_static_parts(key, value))
                    .collect();
                metrics::histogram!(self.name, labels)
            })
            .record(value);
    }
}
