//! Meters processes over one measured window: CPU time and the highest resident memory seen.
//!
//! A thread samples every metered process every 50 ms. Per-thread CPU counters are kept by
//! thread id: a thread that exists at the start counts from its value then, a thread born
//! later counts from zero, and a thread that ends counts up to its last sample (so at most
//! 50 ms of an ended thread's time is missed; the tick count of `/proc/PID/stat` has it all).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::proc_stats::{self, ClockTick, ProcessTicks};

const PERIOD: Duration = Duration::from_millis(50);

/// What one process used during the window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// CPU time from the threads' `schedstat` (nanosecond precision).
    pub cpu: Duration,
    /// CPU time from `utime + stime` (clock-tick precision), the cross-check.
    pub cpu_ticks: Duration,
    /// The part of `cpu_ticks` spent in the kernel (`stime`).
    pub system_ticks: Duration,
    /// The highest `VmRSS` sampled, in KiB.
    pub max_rss_kib: u64,
    /// The window's length.
    pub wall: Duration,
}

impl Usage {
    /// CPU time per event, in microseconds.
    pub fn cpu_us_per(&self, events: u64) -> f64 {
        if events == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e6 / events as f64
    }

    /// The share of the CPU time spent in the kernel, by the clock-tick counters.
    pub fn system_share(&self) -> f64 {
        if self.cpu_ticks.is_zero() {
            return f64::NAN;
        }
        self.system_ticks.as_secs_f64() / self.cpu_ticks.as_secs_f64()
    }

    /// CPU time over wall time (1.0 = one core busy all the time).
    pub fn cpu_share(&self) -> f64 {
        if self.wall.is_zero() {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
}

struct Metered {
    pid: u32,
    start_ticks: ProcessTicks,
    baseline: HashMap<u32, u64>,
    last: HashMap<u32, u64>,
    max_rss_kib: u64,
}

impl Metered {
    fn start(pid: u32) -> Self {
        let baseline = proc_stats::thread_cpu_ns(pid).unwrap_or_default();
        let mut metered = Self {
            pid,
            start_ticks: proc_stats::process_ticks(pid).unwrap_or_default(),
            last: baseline.clone(),
            baseline,
            max_rss_kib: 0,
        };
        metered.sample();
        metered
    }

    fn sample(&mut self) {
        // A process that ended keeps its last values.
        if let Ok(threads) = proc_stats::thread_cpu_ns(self.pid) {
            self.last.extend(threads);
        }
        if let Ok(memory) = proc_stats::memory(self.pid) {
            self.max_rss_kib = self.max_rss_kib.max(memory.rss_kib);
        }
    }

    fn usage(&self, tick: ClockTick, wall: Duration) -> Usage {
        let cpu_ns: u64 = self
            .last
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(self.baseline.get(tid).copied().unwrap_or(0)))
            .sum();
        let used = proc_stats::process_ticks(self.pid)
            .unwrap_or(self.start_ticks)
            .since(self.start_ticks);
        Usage {
            cpu: Duration::from_nanos(cpu_ns),
            cpu_ticks: tick.duration(used.total()),
            system_ticks: tick.duration(used.system),
            max_rss_kib: self.max_rss_kib,
            wall,
        }
    }
}

/// What a window measured.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// One [`Usage`] per metered pid, in the order given to [`Sampler::start`].
    pub processes: Vec<Usage>,
    /// How many of the machine's cores were busy on average, with everyone's work (this
    /// benchmark's processes, other users' builds, the kernel).
    pub machine_busy_cores: f64,
}

impl Window {
    /// The usage of the `index`-th metered process.
    pub fn process(&self, index: usize) -> Usage {
        self.processes.get(index).copied().unwrap_or_default()
    }
}

/// A running sampler; [`finish`](Self::finish) ends the window.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Usage>>,
    machine_start: Option<(u64, u64)>,
}

impl Sampler {
    /// Starts the window now for each of `pids`.
    pub fn start(pids: &[u32], tick: ClockTick) -> Self {
        let machine_start = proc_stats::machine_ticks().ok();
        let stop = Arc::new(AtomicBool::new(false));
        let mut metered: Vec<Metered> = pids.iter().map(|pid| Metered::start(*pid)).collect();
        let started = Instant::now();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Acquire) {
                std::thread::park_timeout(PERIOD);
                for process in &mut metered {
                    process.sample();
                }
            }
            let wall = started.elapsed();
            metered
                .iter()
                .map(|process| process.usage(tick, wall))
                .collect()
        });
        Self {
            stop,
            thread,
            machine_start,
        }
    }

    /// Ends the window.
    pub fn finish(self) -> Window {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let processes = self.thread.join().unwrap_or_default();
        let machine_cores = std::thread::available_parallelism().map_or(1, usize::from);
        let machine_busy_cores = match (self.machine_start, proc_stats::machine_ticks().ok()) {
            (Some((busy0, all0)), Some((busy1, all1))) if all1 > all0 => {
                (busy1 - busy0) as f64 / (all1 - all0) as f64 * machine_cores as f64
            }
            _ => f64::NAN,
        };
        Window {
            processes,
            machine_busy_cores,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_is_counted() {
        let sampler = Sampler::start(&[std::process::id()], ClockTick::of_this_system());
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(120) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert_ne!(x, 0);
        let window = sampler.finish();
        assert_eq!(window.processes.len(), 1);
        let usage = window.process(0);
        assert!(usage.cpu >= Duration::from_millis(60), "{usage:?}");
        assert!(usage.max_rss_kib > 0);
        assert!(usage.wall >= Duration::from_millis(120));
        // This thread alone kept at least a part of one core busy.
        assert!(window.machine_busy_cores > 0.0);
    }
}
