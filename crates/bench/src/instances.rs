//! `instances`: what a handover costs (issue "Several instances on one PostgreSQL"). Two
//! instances share one PostgreSQL database in front of a real Prosody; one holds the
//! `single` link, the other stands by. The same load of RFC 8030 POSTs goes first to the
//! holder, then to the standby, which hands each push to the holder over `LISTEN`/`NOTIFY`
//! and waits for the client's answer. Printed per level: latency, and the CPU per push of
//! each instance, of PostgreSQL (all its processes) and in all; then what the handover adds.
//!
//! The database is `PUSHGATE_BENCH_POSTGRES_URL` (default: the local test server), in a
//! schema of the run's own, dropped at the end.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pushgate_testkit::c2s_client::{C2sClient, C2sConfig};
use pushgate_testkit::free_port::free_loopback_port;
use pushgate_testkit::prosody::{ProsodyInstance, ProsodyOptions};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::BenchError;
use crate::http_load::{self, Load, LoadResult, MEASURING, STOPPING, WARMING_UP};
use crate::proc_stats::ClockTick;
use crate::pushgate_process::PushgateProcess;
use crate::sampler::Sampler;
use crate::unifiedpush::{
    COMPONENT, COMPONENT_SECRET, DOMAIN, PASSWORD, QUIET_PROSODY, USER, answer_pushes, prosody_pid,
    register_endpoints, settings,
};

const BODY_BYTES: usize = 3000;
const CONNECTION_LEVELS: [usize; 2] = [1, 16];
const WARMUP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(5);

/// Runs the benchmark against the binary at `pushgate`; with `only`, just the level with that
/// many connections.
pub async fn run(pushgate: &Path, only: Option<usize>) -> Result<(), BenchError> {
    let server_url = std::env::var("PUSHGATE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "pushgate_bench_{:08x}",
        std::process::id() ^ Instant::now().elapsed().subsec_nanos()
    );
    let mut admin = PgConnection::connect(&server_url)
        .await
        .map_err(|error| BenchError::Protocol(format!("PostgreSQL at {server_url}: {error}")))?;
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .map_err(|error| BenchError::Protocol(format!("create the schema: {error}")))?;
    let separator = if server_url.contains('?') { '&' } else { '?' };
    let url = format!("{server_url}{separator}options=-c%20search_path%3D{schema}");
    let outcome = measure(pushgate, only, &url).await;
    let _ = admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await;
    outcome
}

async fn measure(pushgate: &Path, only: Option<usize>, url: &str) -> Result<(), BenchError> {
    let tick = ClockTick::of_this_system();
    let prosody = ProsodyInstance::start(ProsodyOptions {
        domain: DOMAIN.to_owned(),
        components: vec![(COMPONENT.to_owned(), COMPONENT_SECRET.to_owned())],
        users: vec![(USER.to_owned(), PASSWORD.to_owned())],
        extra_config: QUIET_PROSODY.to_owned(),
        ..ProsodyOptions::default()
    })
    .await?;
    let prosody_pid = prosody_pid(prosody.dir()).await?;

    let holder_address = loopback_address()?;
    let mut holder = PushgateProcess::start(
        pushgate,
        PushgateProcess::workdir()?,
        &settings(url, prosody.component_port(), holder_address),
    )?;
    let mut config = C2sConfig::new(prosody.c2s_port(), DOMAIN, USER, PASSWORD);
    config.resource = "phone".to_owned();
    let client = C2sClient::connect(config).await?;
    // Registration goes through the link, so it succeeds once the holder holds it.
    let paths = register_endpoints(&client, &mut holder).await?;
    let standby_address = loopback_address()?;
    let mut standby = PushgateProcess::start(
        pushgate,
        PushgateProcess::workdir()?,
        &settings(url, prosody.component_port(), standby_address),
    )?;
    wait_for_state(standby_address, "standby", &mut standby).await?;
    // Its listener has read the schema and joined the channel.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answered = Arc::new(AtomicU64::new(0));
    let stop_answering = Arc::new(AtomicBool::new(false));
    let answering = answer_pushes(client, Arc::clone(&answered), Arc::clone(&stop_answering));
    let body: Bytes = (0..BODY_BYTES)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let paths = Arc::new(paths);
    let levels: Vec<usize> = CONNECTION_LEVELS
        .into_iter()
        .filter(|connections| only.is_none_or(|only| only == *connections))
        .collect();

    println!(
        "instances: POST ({BODY_BYTES}-byte body) -> IQ via Prosody -> client result -> 201; two instances on PostgreSQL, one holds the link"
    );
    println!(
        "{:<12} {:>11} {:>8} {:>9} {:>7} {:>7} {:>10} {:>11} {:>13} {:>10}  other statuses",
        "POSTs go",
        "connections",
        "pushes",
        "pushes/s",
        "p50 ms",
        "p99 ms",
        "holder µs",
        "standby µs",
        "PostgreSQL µs",
        "total µs"
    );
    let mut rows = Vec::new();
    for (target, name) in [
        (holder_address, "to holder"),
        (standby_address, "to standby"),
    ] {
        for &connections in &levels {
            holder.ensure_running()?;
            standby.ensure_running()?;
            let load = Load {
                address: target,
                paths: Arc::clone(&paths),
                body: body.clone(),
                ttl: 60,
                matrix_notifies: None,
            };
            let mut pids = vec![holder.pid(), standby.pid(), prosody_pid];
            pids.extend(postgres_pids());
            let row = run_level(&load, connections, &pids, tick).await?;
            println!(
                "{:<12} {:>11} {:>8} {:>9.0} {:>7.2} {:>7.2} {:>10.1} {:>11.1} {:>13.1} {:>10.1}  {}",
                name,
                connections,
                row.pushes,
                row.per_second,
                row.p50,
                row.p99,
                row.holder_us,
                row.standby_us,
                row.postgres_us,
                row.total_us(),
                row.others
            );
            rows.push((name, connections, row));
        }
    }
    println!("what a handover adds, per push:");
    for &connections in &levels {
        let find = |target: &str| {
            rows.iter()
                .find(|(name, level, _)| *name == target && *level == connections)
                .map(|(_, _, row)| row)
        };
        if let (Some(direct), Some(handed)) = (find("to holder"), find("to standby")) {
            println!(
                "  at {connections} connections: latency p50 +{:.2} ms ({:.2} -> {:.2}), p99 +{:.2} ms; CPU +{:.1} µs ({:.1} -> {:.1} µs: pushgate +{:.1}, PostgreSQL +{:.1})",
                handed.p50 - direct.p50,
                direct.p50,
                handed.p50,
                handed.p99 - direct.p99,
                handed.total_us() - direct.total_us(),
                direct.total_us(),
                handed.total_us(),
                (handed.holder_us + handed.standby_us) - (direct.holder_us + direct.standby_us),
                handed.postgres_us - direct.postgres_us,
            );
        }
    }
    println!(
        "client answered {} pushes in all (warm-ups included)",
        answered.load(Ordering::Relaxed)
    );
    stop_answering.store(true, Ordering::Release);
    let _ = standby.stop().await;
    let _ = holder.stop().await;
    if let Ok(client) = answering.await {
        let _ = client.close().await;
    }
    drop(prosody);
    Ok(())
}

/// One level's numbers.
struct Row {
    pushes: u64,
    per_second: f64,
    p50: f64,
    p99: f64,
    holder_us: f64,
    standby_us: f64,
    postgres_us: f64,
    others: String,
}

impl Row {
    fn total_us(&self) -> f64 {
        self.holder_us + self.standby_us + self.postgres_us
    }
}

async fn run_level(
    load: &Load,
    connections: usize,
    pids: &[u32],
    tick: ClockTick,
) -> Result<Row, BenchError> {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let workers = http_load::start(load, connections, &phase);
    tokio::time::sleep(WARMUP).await;
    let sampler = Sampler::start(pids, tick);
    phase.store(MEASURING, Ordering::Release);
    tokio::time::sleep(WINDOW).await;
    phase.store(STOPPING, Ordering::Release);
    let window = sampler.finish();
    let mut result: LoadResult = http_load::finish(workers).await?;
    let pushes = result.statuses.get(&201).copied().unwrap_or(0);
    let per_push = |index: usize| window.process(index).cpu_us_per(pushes);
    let postgres_us: f64 = (3..pids.len()).map(per_push).sum();
    let others: Vec<String> = result
        .statuses
        .iter()
        .filter(|(status, _)| **status != 201)
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    Ok(Row {
        pushes,
        per_second: pushes as f64 / window.process(0).wall.as_secs_f64(),
        p50: result.latencies.percentile_ms(50.0),
        p99: result.latencies.percentile_ms(99.0),
        holder_us: per_push(0),
        standby_us: per_push(1),
        postgres_us,
        others: if others.is_empty() {
            "none".to_owned()
        } else {
            others.join(", ")
        },
    })
}

/// Every process of the PostgreSQL server on this machine (its backends included), whose CPU
/// the handover's notifications cost.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .collect()
}

fn loopback_address() -> Result<SocketAddr, BenchError> {
    let port = free_loopback_port().map_err(BenchError::io("find a free port"))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits until `/health` at `address` names the link `state`.
async fn wait_for_state(
    address: SocketAddr,
    state: &str,
    process: &mut PushgateProcess,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = format!("\"state\":\"{state}\"");
    loop {
        process.ensure_running()?;
        if health(address)
            .await
            .is_some_and(|body| body.contains(&wanted))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Pushgate(format!(
                "the link was not {state} within 20 s\n{}",
                process.log_tail(30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of `GET /health`, if it answers.
async fn health(address: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    String::from_utf8(answer).ok()
}
