//! The server side of the link under load: registrations, then publishes kept in flight.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use pushgate_testkit::fake_xmpp_server::{FakeSession, FromComponent};
use xmpp_parsers::minidom::Element;

use super::scenario::Service;
use super::stanzas::{error_condition, form_value, publish_stanza, register_stanza};
use super::{DEVICES, DRAIN_LIMIT, Level, REGISTRATIONS_IN_FLIGHT};
use crate::error::BenchError;
use crate::latency::Latencies;
use crate::proc_stats::{ClockTick, megabytes};
use crate::sampler::{Sampler, Usage, Window};

/// A registered device: what a publish needs.
struct Device {
    node: String,
    secret: String,
}

/// The column heads of [`LevelResult::print`].
pub(super) const HEADER: &str = "in-flight    answers   wake-ups/s   p50 ms   p99 ms   CPU µs/wake-up  (stat ticks)   RSS MB   driver µs/w-u   busy cores  errors";

/// The outcome of one level's measured window.
pub(super) struct LevelResult {
    /// Publishes kept in flight.
    pub in_flight: usize,
    /// Publishes answered with a result (wake-ups accepted by FCM).
    pub ok: u64,
    /// Error answers by condition.
    pub errors: BTreeMap<String, u64>,
    /// Publish to answer times.
    pub latencies: Latencies,
    /// pushgate's use of the machine.
    pub pushgate: Usage,
    /// This driver's (fake XMPP server, fake FCM).
    pub driver: Usage,
    /// The whole machine's busy cores during the window.
    pub busy_cores: f64,
    /// Publishes never answered within the drain limit.
    pub lost: usize,
}

impl LevelResult {
    /// Wake-ups per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.pushgate.wall.as_secs_f64()
    }

    /// One row under [`HEADER`].
    pub fn print(&mut self) {
        let mut errors: Vec<String> = self
            .errors
            .iter()
            .map(|(condition, count)| format!("{condition}: {count}"))
            .collect();
        if self.lost > 0 {
            errors.push(format!("unanswered: {}", self.lost));
        }
        let ticks_us = self.pushgate.cpu_ticks.as_secs_f64() * 1e6 / self.ok.max(1) as f64;
        println!(
            "{:>9} {:>10} {:>12.0} {:>8.1} {:>8.1} {:>16.1} {:>13.1} {:>8.1} {:>15.1} {:>12.2}  {}",
            self.in_flight,
            self.ok + self.errors.values().sum::<u64>(),
            self.rate(),
            self.latencies.percentile_ms(50.0),
            self.latencies.percentile_ms(99.0),
            self.pushgate.cpu_us_per(self.ok),
            ticks_us,
            megabytes(self.pushgate.max_rss_kib),
            self.driver.cpu_us_per(self.ok),
            self.busy_cores,
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            }
        );
    }
}

/// The server side of the link: sends registrations and publishes, matches the answers.
pub(super) struct Publisher {
    session: FakeSession,
    devices: Vec<Device>,
    next: u64,
    /// Publishes awaiting their answer, by number (the IQ id is `p{number}`).
    outstanding: HashMap<u64, Instant>,
}

impl Publisher {
    /// Serves the link of `session`.
    pub fn new(session: FakeSession) -> Self {
        Self {
            session,
            devices: Vec::new(),
            next: 0,
            outstanding: HashMap::new(),
        }
    }

    /// Registers [`DEVICES`] devices of `service`, [`REGISTRATIONS_IN_FLIGHT`] at a time.
    pub async fn register_devices(&mut self, service: Service) -> Result<(), BenchError> {
        let mut sent = 0;
        let mut waiting = 0;
        while (self.devices.len() as u64) < DEVICES {
            while waiting < REGISTRATIONS_IN_FLIGHT && sent < DEVICES {
                self.session.send_raw(register_stanza(sent, service));
                sent += 1;
                waiting += 1;
            }
            let answer = match self.session.next_event(Duration::from_secs(10)).await {
                Some(FromComponent::Stanza(element)) => element,
                Some(other) => {
                    return Err(BenchError::Pushgate(format!(
                        "the link ended during registration: {other:?}"
                    )));
                }
                None => {
                    return Err(BenchError::Pushgate(
                        "no registration answer within 10 s".to_owned(),
                    ));
                }
            };
            if !answer.attr("id").is_some_and(|id| id.starts_with("reg")) {
                continue;
            }
            waiting -= 1;
            match (form_value(&answer, "node"), form_value(&answer, "secret")) {
                (Some(node), Some(secret)) if answer.attr("type") == Some("result") => {
                    self.devices.push(Device { node, secret });
                }
                _ => {
                    return Err(BenchError::Pushgate(format!(
                        "registration refused: {}",
                        String::from(&answer)
                    )));
                }
            }
        }
        Ok(())
    }

    fn send_publish(&mut self) {
        let number = self.next;
        self.next += 1;
        let device = &self.devices[(number % self.devices.len() as u64) as usize];
        let stanza = publish_stanza(number, &device.node, &device.secret);
        self.outstanding.insert(number, Instant::now());
        self.session.send_raw(stanza);
    }

    /// Matches an answer to its publish: when it was sent and the error condition, if any.
    fn answer(&mut self, element: &Element) -> Option<(Instant, Option<String>)> {
        let number = element
            .attr("id")
            .and_then(|id| id.strip_prefix('p'))
            .and_then(|number| number.parse().ok())?;
        let sent = self.outstanding.remove(&number)?;
        match element.attr("type") {
            Some("result") => Some((sent, None)),
            _ => Some((sent, Some(error_condition(element)))),
        }
    }

    /// Runs one level: warm-up, measured window, drain.
    pub async fn run_level(
        &mut self,
        level: &Level,
        pids: &[u32],
        tick: ClockTick,
    ) -> Result<LevelResult, BenchError> {
        let warm_end = Instant::now() + level.warmup;
        for _ in 0..level.in_flight {
            self.send_publish();
        }
        let mut window: Option<(Instant, Sampler)> = None;
        let mut measured: Option<Window> = None;
        let mut latencies = Latencies::default();
        let mut ok = 0u64;
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut drain_deadline: Option<Instant> = None;
        let mut lost = 0;
        loop {
            let now = Instant::now();
            if window.is_none() && measured.is_none() && now >= warm_end {
                window = Some((now, Sampler::start(pids, tick)));
            }
            if let Some((started, _)) = &window {
                let elapsed = now - *started;
                let answers = ok + errors.values().sum::<u64>();
                if (elapsed >= level.duration && answers >= level.min_answers)
                    || elapsed >= level.max_duration
                {
                    if let Some((_, sampler)) = window.take() {
                        measured = Some(sampler.finish());
                    }
                    drain_deadline = Some(now + DRAIN_LIMIT);
                }
            }
            let sending = drain_deadline.is_none();
            if !sending && self.outstanding.is_empty() {
                break;
            }
            let wait = match drain_deadline {
                None => Duration::from_millis(20),
                Some(deadline) => deadline.saturating_duration_since(now),
            };
            match self.session.next_event(wait).await {
                Some(FromComponent::Stanza(element)) => {
                    let Some((sent, error)) = self.answer(&element) else {
                        continue;
                    };
                    if window.is_some() {
                        latencies.record(sent.elapsed());
                        match error {
                            None => ok += 1,
                            Some(condition) => *errors.entry(condition).or_default() += 1,
                        }
                    }
                    if sending {
                        self.send_publish();
                    }
                }
                Some(other) => {
                    return Err(BenchError::Pushgate(format!(
                        "the link ended during the run: {other:?}"
                    )));
                }
                None => {
                    if drain_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        lost = self.outstanding.len();
                        self.outstanding.clear();
                        break;
                    }
                }
            }
        }
        let measured = measured.unwrap_or_default();
        Ok(LevelResult {
            in_flight: level.in_flight,
            ok,
            errors,
            latencies,
            pushgate: measured.process(0),
            driver: measured.process(1),
            busy_cores: measured.machine_busy_cores,
            lost,
        })
    }
}
