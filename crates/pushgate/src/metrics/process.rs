//! The process's own metrics under the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, …), read from `/proc/self` (Linux). Four numbers do not
//! warrant a dependency tree of their own.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge};

/// `process_start_time_seconds`, once at start.
pub(super) fn record_start() {
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        gauge!("process_start_time_seconds").set(now.as_secs_f64());
    }
}

/// CPU time, resident memory, open and allowed file descriptors, as of now.
pub(super) fn record() {
    if let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(cpu_ticks)
    {
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        // An absolute value: the counter is set, not added to.
        counter!("process_cpu_seconds_total").absolute(ticks / per_second);
    }
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .as_deref()
        .and_then(resident_pages)
    {
        let bytes = pages.saturating_mul(rustix::param::page_size() as u64);
        gauge!("process_resident_memory_bytes").set(bytes as f64);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(entries.count() as f64);
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(max) = limit.current {
        gauge!("process_max_fds").set(max as f64);
    }
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15), counted after the command name,
/// which may itself hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The second field of `/proc/self/statm`: resident pages.
fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (push (gate) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 3";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn resident_pages_are_the_second_field() {
        assert_eq!(resident_pages("5000 1200 300 10 0 900 0"), Some(1200));
        assert_eq!(resident_pages(""), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
        assert!(cpu_ticks(&stat).is_some());
        let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
        assert!(resident_pages(&statm).is_some_and(|pages| pages > 0));
    }
}
