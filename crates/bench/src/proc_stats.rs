//! What the kernel says about a running process, read from `/proc` (proc(5)).
//!
//! CPU time comes from two places that must agree: the per-thread `schedstat` files (time on
//! the CPU in nanoseconds, user and system together) and the process-wide `utime + stime` of
//! `/proc/PID/stat` (in clock ticks, usually 10 ms). The nanoseconds are precise enough for a
//! level with a few dozen wake-ups; the ticks also count threads that ended in between, so they
//! are the cross-check.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::process::Command;
use std::time::Duration;

/// The length of one clock tick of `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`).
#[derive(Clone, Copy, Debug)]
pub struct ClockTick {
    per_second: u64,
}

impl ClockTick {
    /// Asks `getconf CLK_TCK`; Linux has used 100 on every architecture for user space, so
    /// that is the answer when `getconf` is missing.
    pub fn of_this_system() -> Self {
        let asked = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|per_second| *per_second > 0);
        Self {
            per_second: asked.unwrap_or(100),
        }
    }

    /// `ticks` as a duration.
    pub fn duration(self, ticks: u64) -> Duration {
        Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / self.per_second)
    }
}

/// CPU time of a whole process (every thread, ended ones included), in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessTicks {
    /// `utime`: running its own code.
    pub user: u64,
    /// `stime`: in the kernel on its behalf (system calls, and the loopback network work a
    /// send does for the receiving socket).
    pub system: u64,
}

impl ProcessTicks {
    /// Both together.
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    /// What was used from `earlier` to `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// `utime` and `stime` of the whole process, in clock ticks.
pub fn process_ticks(pid: u32) -> io::Result<ProcessTicks> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or_else(|| malformed("stat", pid))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `fields[0]` is field 3 (state).
    let field = |number: usize| -> io::Result<u64> {
        fields
            .get(number - 3)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| malformed("stat", pid))
    };
    Ok(ProcessTicks {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Time on the CPU of each live thread, in nanoseconds, by thread id.
pub fn thread_cpu_ns(pid: u32) -> io::Result<HashMap<u32, u64>> {
    let mut threads = HashMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read: skip it.
        let Ok(schedstat) = fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = schedstat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
        {
            threads.insert(tid, ns);
        }
    }
    Ok(threads)
}

/// CPU time of the whole machine from the `cpu` line of `/proc/stat`, in clock ticks: (busy,
/// all). Busy is everything but `idle` and `iowait`; `steal` (a hypervisor running others)
/// counts as busy, since this machine could not use it either.
pub fn machine_ticks() -> io::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat")?;
    let values: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if values.len() < 5 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/stat has an unexpected shape",
        ));
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let all: u64 = values.iter().take(8).sum();
    let idle = values[3] + values[4];
    Ok((all - idle, all))
}

/// Resident memory of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident, in KiB.
    pub peak_kib: u64,
}

/// `VmRSS` and `VmHWM` from `/proc/PID/status`.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| malformed("status", pid))
    };
    Ok(Memory {
        rss_kib: kib("VmRSS:")?,
        peak_kib: kib("VmHWM:")?,
    })
}

/// KiB as MB (10^6 bytes), as the targets are written.
pub fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

fn malformed(file: &str, pid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("/proc/{pid}/{file} has an unexpected shape"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        // Burn a little CPU so the counters move.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let threads = thread_cpu_ns(pid).expect("schedstat");
        assert!(threads.values().sum::<u64>() > 0);
        let ticks = process_ticks(pid).expect("stat");
        let tick = ClockTick::of_this_system();
        assert!(tick.duration(ticks.total()) <= Duration::from_secs(3600));
        assert_eq!(ticks.total(), ticks.user + ticks.system);
        assert_eq!(ticks.since(ticks), ProcessTicks::default());
        let (busy, all) = machine_ticks().expect("/proc/stat");
        assert!(busy <= all && all > 0);
        let memory = memory(pid).expect("status");
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
    }

    #[test]
    fn ticks_become_durations() {
        let tick = ClockTick { per_second: 100 };
        assert_eq!(tick.duration(150), Duration::from_millis(1500));
    }
}
