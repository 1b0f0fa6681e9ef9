//! One load level of `store` (a warm-up, then a measured window) and the pre-fill.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use super::{PREFILL_CHUNK, PREFILL_CONNECTIONS, PREFILL_LIMIT, PREFILLED, WARMUP, WINDOW};
use crate::error::BenchError;
use crate::http_load::{self, Load, MEASURING, STOPPING, WARMING_UP};
use crate::proc_stats::{ClockTick, megabytes};
use crate::pushgate_process::PushgateProcess;
use crate::sampler::{Sampler, Usage};

/// The column heads of [`LevelResult::print`].
pub(super) const HEADER: &str = "stored before  connections   stores  stores/s   p50 ms   p99 ms  CPU µs/store  (stat ticks)  RSS MB  driver µs/store  busy cores  other answers";

/// What one level measured.
pub(super) struct LevelResult {
    /// Messages stored before the level began (201 answers counted so far).
    pub stored_before: u64,
    /// Keep-alive connections posting.
    pub connections: usize,
    /// 201 answers in the measured window: messages stored.
    pub stores: u64,
    /// 201 answers over the whole level, warm-up included: what it added to the database.
    pub created: u64,
    /// POST answer time percentiles over the window, in ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Answers other than 201 over the whole level, by status.
    pub others: BTreeMap<u16, u64>,
    /// pushgate's use of the machine in the window.
    pub pushgate: Usage,
    /// This driver's (HTTP load, fake XMPP server).
    pub driver: Usage,
    /// The whole machine's busy cores in the window.
    pub busy_cores: f64,
}

impl LevelResult {
    /// Messages stored per second in the window.
    pub fn rate(&self) -> f64 {
        self.stores as f64 / self.pushgate.wall.as_secs_f64()
    }

    /// One row under [`HEADER`].
    pub fn print(&self) {
        let ticks_us = self.pushgate.cpu_ticks.as_secs_f64() * 1e6 / self.stores.max(1) as f64;
        println!(
            "{:>13} {:>12} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>13.1} {:>13.1} {:>7.1} {:>16.1} {:>11.2}  {}",
            self.stored_before,
            self.connections,
            self.stores,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.pushgate.cpu_us_per(self.stores),
            ticks_us,
            megabytes(self.pushgate.max_rss_kib),
            self.driver.cpu_us_per(self.stores),
            self.busy_cores,
            if self.others.is_empty() {
                "none".to_owned()
            } else {
                format!("{:?}", self.others)
            }
        );
    }
}

/// Runs `connections` connections for [`WARMUP`] and then a measured window of [`WINDOW`];
/// `pids` are pushgate's and this driver's.
pub(super) async fn measure(
    load: &Load,
    connections: usize,
    stored_before: u64,
    pids: [u32; 2],
    tick: ClockTick,
) -> Result<LevelResult, BenchError> {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let workers = http_load::start(load, connections, &phase);
    tokio::time::sleep(WARMUP).await;
    let sampler = Sampler::start(&pids, tick);
    phase.store(MEASURING, Ordering::Release);
    tokio::time::sleep(WINDOW).await;
    phase.store(STOPPING, Ordering::Release);
    let window = sampler.finish();
    let mut result = http_load::finish(workers).await?;
    let mut others = BTreeMap::new();
    for (status, count) in result.statuses.iter().chain(result.unmeasured.iter()) {
        if *status != 201 {
            *others.entry(*status).or_default() += count;
        }
    }
    Ok(LevelResult {
        stored_before,
        connections,
        stores: result.statuses.get(&201).copied().unwrap_or(0),
        created: result.all_with(201),
        p50_ms: result.latencies.percentile_ms(50.0),
        p99_ms: result.latencies.percentile_ms(99.0),
        others,
        pushgate: window.process(0),
        driver: window.process(1),
        busy_cores: window.machine_busy_cores,
    })
}

/// Posts at [`PREFILL_CONNECTIONS`] connections, in rounds of [`PREFILL_CHUNK`], until
/// [`PREFILLED`] messages are stored in all (`stored` so far) or [`PREFILL_LIMIT`] has passed;
/// prints how it went and returns the messages it added.
pub(super) async fn prefill(
    load: &Load,
    stored: u64,
    process: &mut PushgateProcess,
) -> Result<u64, BenchError> {
    let started = Instant::now();
    let mut added = 0;
    let mut others: BTreeMap<u16, u64> = BTreeMap::new();
    while stored + added < PREFILLED && started.elapsed() < PREFILL_LIMIT {
        process.ensure_running()?;
        // Every answer counts here: nothing is timed, only the messages stored matter.
        let phase = Arc::new(AtomicU8::new(MEASURING));
        let workers = http_load::start(load, PREFILL_CONNECTIONS, &phase);
        tokio::time::sleep(PREFILL_CHUNK).await;
        phase.store(STOPPING, Ordering::Release);
        let result = http_load::finish(workers).await?;
        let created = result.all_with(201);
        for (status, count) in result.statuses.iter().chain(result.unmeasured.iter()) {
            if *status != 201 {
                *others.entry(*status).or_default() += count;
            }
        }
        if created == 0 {
            return Err(BenchError::Pushgate(format!(
                "stored nothing in {} s of pre-fill; answers: {:?}",
                PREFILL_CHUNK.as_secs_f64(),
                result.statuses
            )));
        }
        added += created;
    }
    let took = started.elapsed();
    let reached = if stored + added >= PREFILLED {
        "reached".to_owned()
    } else {
        format!("NOT reached within {} s", PREFILL_LIMIT.as_secs())
    };
    println!(
        "pre-fill: {added} messages stored in {:.1} s ({:.0}/s at {PREFILL_CONNECTIONS} connections, round starts included); {} stored in all, {PREFILLED} {reached}; other answers: {}",
        took.as_secs_f64(),
        added as f64 / took.as_secs_f64().max(f64::MIN_POSITIVE),
        stored + added,
        if others.is_empty() {
            "none".to_owned()
        } else {
            format!("{others:?}")
        }
    );
    Ok(added)
}
