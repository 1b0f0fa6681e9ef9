//! pushgate's benchmarks, run through `cargo xtask bench NAME`: the release binary as its own
//! process under load, with its CPU time and memory read from `/proc`. They print numbers and
//! the targets beside them; they are not tests.
//!
//! - `wakeup`: XEP-0357 publishes from a fake XMPP server, FCM wake-ups to a fake FCM.
//! - `unifiedpush`: RFC 8030 POSTs through pushgate and a real Prosody to a client.
//! - `instances`: the same through two instances on PostgreSQL, to the one holding the link
//!   and to a standby that hands each push over.
//! - `store`: RFC 8030 POSTs for a client that is offline, so every message is stored, on
//!   SQLite, PostgreSQL and MariaDB (fake XMPP server).
//!
//! Usage: `pushgate-bench <wakeup|unifiedpush|instances|store> [--pushgate PATH] [--only LEVEL]
//! [--backend NAME]`; the default path is the workspace's `target/release/pushgate`; `--only`
//! runs one load level (e.g. to attach a profiler to pushgate while it runs); `--backend`
//! runs `store` on one database (`sqlite`, `postgresql` or `mariadb`).

mod error;
mod http_load;
mod instances;
mod latency;
mod proc_stats;
mod pushgate_process;
mod report;
mod sampler;
mod store;
mod unifiedpush;
mod wakeup;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: pushgate-bench <wakeup|unifiedpush|instances|store> [--pushgate PATH] [--only LEVEL] [--backend sqlite|postgresql|mariadb]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let mut pushgate = default_binary();
    let mut only = None;
    let mut backend = None;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match (arg.as_str(), rest.next()) {
            ("--pushgate", Some(path)) => pushgate = PathBuf::from(path),
            ("--only", Some(level)) if level.parse::<usize>().is_ok() => only = level.parse().ok(),
            ("--backend", Some(name)) => backend = Some(name.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushgate-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        match name.as_str() {
            "wakeup" => wakeup::run(&pushgate, only).await,
            "unifiedpush" => unifiedpush::run(&pushgate, only).await,
            "instances" => instances::run(&pushgate, only).await,
            "store" => store::run(&pushgate, only, backend.as_deref()).await,
            _ => Err(error::BenchError::Protocol(format!(
                "unknown benchmark `{name}`\n{USAGE}"
            ))),
        }
    });
    // Everything the benchmark started was stopped when its owner dropped, before this point.
    match outcome {
        Ok(()) => {
            println!("{name}: done in {:.0} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pushgate-bench {name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `target/release/pushgate` of this workspace.
fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("release").join("pushgate")
}
