//! How much memory a full delivery trace takes: 100,000 keys with 32 events each, and 100,000
//! keys with 2 events each, as the growth of the process's resident set (VmRSS).
//!
//! Each case runs in a child process of its own, so memory freed by one case and kept by the
//! allocator does not hide the other's growth.
//!
//! `cargo run -p pushgate-core --release --example trace_memory`

use std::error::Error;
use std::process::Command;

use pushgate_core::trace::{
    AppTag, DEFAULT_TRACE_KEYS, DeliveryTrace, Hop, TraceEvent, TraceId, TraceOutcome,
};

const CASES: [usize; 2] = [32, 2];

fn main() -> Result<(), Box<dyn Error>> {
    match std::env::args().nth(1) {
        Some(events) => measure(events.parse()?),
        None => {
            let this = std::env::current_exe()?;
            for events in CASES {
                let status = Command::new(&this).arg(events.to_string()).status()?;
                if !status.success() {
                    return Err(format!("the case of {events} events failed: {status}").into());
                }
            }
            Ok(())
        }
    }
}

fn measure(events_per_key: usize) -> Result<(), Box<dyn Error>> {
    let keys = DEFAULT_TRACE_KEYS;
    let application = AppTag::of("im.conversations.example");
    // The keys are worked out first, so only the trace's own memory is counted.
    let trace = DeliveryTrace::new(keys);
    let trace_keys: Vec<_> = (0..keys)
        .map(|n| trace.account_key(&format!("user{n}@example.org")))
        .collect();
    let before = resident_kib()?;
    for (n, key) in trace_keys.iter().enumerate() {
        for step in 0..events_per_key {
            let at = i64::try_from(n * 100 + step)?;
            trace.record(
                key,
                TraceEvent {
                    at,
                    hop: Hop::PushSent,
                    outcome: TraceOutcome::Ok,
                    latency_us: 1_200,
                    application: Some(application),
                    trace_id: TraceId::new(),
                },
            );
        }
    }
    let after = resident_kib()?;
    let grown = after.saturating_sub(before);
    let per_key = grown * 1024 / u64::try_from(trace.len().max(1))?;
    println!(
        "{} keys × {events_per_key} events: RSS {before} KiB → {after} KiB, +{grown} KiB \
         ({:.1} MiB, {per_key} bytes per key; events alone {} bytes per key)",
        trace.len(),
        grown as f64 / 1024.0,
        events_per_key * std::mem::size_of::<TraceEvent>(),
    );
    std::hint::black_box(&trace);
    Ok(())
}

fn resident_kib() -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    let kib = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib)
}
