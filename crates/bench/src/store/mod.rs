//! `store`: how fast pushgate keeps messages for a client that is offline (issue "Load and
//! abuse": during an XMPP outage every POST must be stored, so the store's rate is the ceiling
//! of the whole service).
//!
//! The release pushgate links with the `unified_push` role to the testkit's fake XMPP server,
//! run here. [`ENDPOINTS`] endpoints of [`OWNERS`] owners (full JIDs) are registered through the
//! link; from then on the fake server answers every push the way Prosody answers for an offline
//! resource ([`offline`]), so pushgate stores every message before its 201. Keep-alive HTTP
//! connections ([`CONNECTION_LEVELS`]) post 4096-byte bodies with `TTL: 86400`. The caps and
//! rate limits of `[unified_push]` and the per-address connection cap are raised out of the
//! way; `[database]` and `[runtime]` stay at pushgate's defaults. Each backend ([`backend`]:
//! SQLite, PostgreSQL, MariaDB) gets an empty database and a pushgate process of its own; the
//! levels run on the empty store, then it is filled to [`PREFILLED`] messages and they run
//! again, since the rate must not fall as the store fills. At the end the rows of
//! `stored_messages` are counted against the 201 answers.

mod backend;
mod level;
mod offline;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use pushgate_testkit::fake_xmpp_server::FakeXmppServer;
use pushgate_testkit::free_port::free_loopback_port;

use crate::error::BenchError;
use crate::http_load::Load;
use crate::proc_stats::{self, ClockTick, megabytes};
use crate::pushgate_process::PushgateProcess;
use crate::report::{Verdict, print_targets};
use backend::{Kind, Place, Setup};
use level::{HEADER, LevelResult};
use offline::OfflineServer;

const DOMAIN: &str = "example.test";
const COMPONENT: &str = "push.example.test";
const COMPONENT_SECRET: &str = "bench-component-secret";
/// Owners (full JIDs) the endpoints belong to, in turn.
const OWNERS: usize = 32;
/// Endpoints registered; the connections post to them in turn.
const ENDPOINTS: usize = 256;
/// The largest body pushgate takes (docs/protocol.md A.3).
const BODY_BYTES: usize = 4096;
/// Seconds the sender asks for the message to be kept (a day, `message_ttl_max`'s default).
const TTL_SECONDS: u32 = 86_400;
const CONNECTION_LEVELS: [usize; 3] = [16, 64, 256];
const WARMUP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(4);
/// Messages in the store before the levels run again.
const PREFILLED: u64 = 100_000;
/// The pre-fill posts at this many connections, in rounds of [`PREFILL_CHUNK`], for at most
/// [`PREFILL_LIMIT`].
const PREFILL_CONNECTIONS: usize = 256;
const PREFILL_CHUNK: Duration = Duration::from_secs(2);
const PREFILL_LIMIT: Duration = Duration::from_secs(120);

/// Targets of the issue, for SQLite and PostgreSQL (none is set for MariaDB).
const RATE_TARGET: f64 = 5_000.0;
const P99_TARGET_MS: f64 = 50.0;

/// Runs the benchmark against the binary at `pushgate` on every backend that can be reached
/// and prints the results; with `only`, just the level with that many connections; with
/// `backend`, just that backend (`sqlite`, `postgresql` or `mariadb`).
pub async fn run(
    pushgate: &Path,
    only: Option<usize>,
    backend: Option<&str>,
) -> Result<(), BenchError> {
    let levels: Vec<usize> = CONNECTION_LEVELS
        .into_iter()
        .filter(|connections| only.is_none_or(|only| only == *connections))
        .collect();
    if levels.is_empty() {
        return Err(BenchError::Protocol(format!(
            "store has no level with that many connections (levels: {CONNECTION_LEVELS:?})"
        )));
    }
    println!(
        "store: POST ({BODY_BYTES}-byte body, TTL {TTL_SECONDS}) -> push IQ -> service-unavailable (client offline) -> stored -> 201; {ENDPOINTS} endpoints of {OWNERS} owners; [unified_push] caps and rates raised, [database] and [runtime] at pushgate's defaults"
    );
    let mut verdicts = Vec::new();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|kind| backend.is_none_or(|name| name.eq_ignore_ascii_case(kind.name())))
        .collect();
    if kinds.is_empty() {
        return Err(BenchError::Protocol(
            "store has no such backend (backends: sqlite, postgresql, mariadb)".to_owned(),
        ));
    }
    for kind in kinds {
        match Place::create(kind).await? {
            Setup::Skipped(reason) => println!("\n{}: skipped, {reason}", kind.name()),
            Setup::Ready(place) => {
                let outcome = run_backend(pushgate, &place, &levels).await;
                place.remove().await;
                verdicts.extend(outcome?);
            }
        }
    }
    println!();
    print_targets(&verdicts);
    Ok(())
}

/// One backend: a fake XMPP server and a pushgate process of their own on `place`; the levels
/// on the empty store, the pre-fill, the levels again, the row count. Returns its targets.
async fn run_backend(
    pushgate: &Path,
    place: &Place,
    levels: &[usize],
) -> Result<Vec<Verdict>, BenchError> {
    let tick = ClockTick::of_this_system();
    let machine_cores = std::thread::available_parallelism().map_or(1, usize::from);
    let server = FakeXmppServer::start(COMPONENT, COMPONENT_SECRET)
        .await
        .map_err(BenchError::io("start the fake XMPP server"))?;
    server.answer_pings(true);
    let http_port = free_loopback_port().map_err(BenchError::io("find a free port"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], http_port));
    let dir = PushgateProcess::workdir()?;
    let settings = settings(&place.url, server.port(), address);
    let mut process = PushgateProcess::start(pushgate, dir, &settings)?;
    let pid = process.pid();

    let Some(mut session) = server.next_session(Duration::from_secs(20)).await else {
        process.ensure_running()?;
        return Err(BenchError::Pushgate(format!(
            "did not link up within 20 s\n{}",
            process.log_tail(30)
        )));
    };
    let paths = match offline::register_endpoints(&mut session).await {
        Ok(paths) => paths,
        Err(error) => {
            process.ensure_running()?;
            return Err(error);
        }
    };
    let client = OfflineServer::start(session);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = proc_stats::memory(pid).map_err(BenchError::io("read pushgate's memory"))?;

    let body: Bytes = (0..BODY_BYTES)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let load = Load {
        address,
        paths: Arc::new(paths),
        body,
        ttl: TTL_SECONDS,
        matrix_notifies: None,
    };
    println!("\n{} ({})", place.kind.name(), place.shown);
    println!(
        "pushgate idle RSS (linked, endpoints registered): {:.1} MB; {machine_cores} cores",
        megabytes(idle.rss_kib)
    );
    println!("{HEADER}");
    let pids = [pid, std::process::id()];
    let mut stored = 0;
    let run_levels = async |stored: &mut u64, process: &mut PushgateProcess| {
        let mut results = Vec::new();
        for connections in levels {
            process.ensure_running()?;
            client.ensure_linked()?;
            let result = level::measure(&load, *connections, *stored, pids, tick).await?;
            *stored += result.created;
            result.print();
            results.push(result);
        }
        Ok::<_, BenchError>(results)
    };
    let empty = run_levels(&mut stored, &mut process).await?;
    stored += level::prefill(&load, stored, &mut process).await?;
    let filled = run_levels(&mut stored, &mut process).await?;
    process.ensure_running()?;
    client.ensure_linked()?;
    if let Ok(memory) = proc_stats::memory(pid) {
        println!(
            "pushgate peak RSS over the run (VmHWM): {:.1} MB",
            megabytes(memory.peak_kib)
        );
    }
    let clean = process.stop().await;
    let answered = client.finish().await;
    let rows = place.stored_rows().await?;
    println!(
        "pushgate stopped {}; the offline client answered {answered} pushes",
        if clean { "cleanly" } else { "by SIGKILL" }
    );
    println!(
        "stored_messages holds {rows} rows; pushgate answered 201 {stored} times: {}",
        if u64::try_from(rows).is_ok_and(|rows| rows == stored) {
            "they match"
        } else {
            "MISMATCH"
        }
    );
    Ok(targets(place.kind, &empty, &filled))
}

/// The issue's targets for `kind`, on the empty and on the filled store: the rate and p99 of
/// the level that stored the most with p99 within the target (or, if none did, the most).
fn targets(kind: Kind, empty: &[LevelResult], filled: &[LevelResult]) -> Vec<Verdict> {
    if kind == Kind::MariaDb {
        return Vec::new();
    }
    let mut verdicts = Vec::new();
    for results in [empty, filled] {
        let Some(best) = best(results) else {
            continue;
        };
        let state = if best.stored_before == 0 {
            "empty store".to_owned()
        } else {
            format!("{}k stored", best.stored_before / 1000)
        };
        let at = format!("{}, {state}, {} conns", kind.name(), best.connections);
        verdicts.push(Verdict::at_least(
            format!("stores/s, {at}"),
            best.rate(),
            RATE_TARGET,
            "/s",
        ));
        verdicts.push(Verdict::at_most(
            format!("POST p99 while storing, {at}"),
            best.p99_ms,
            P99_TARGET_MS,
            "ms",
        ));
    }
    verdicts
}

/// The level with the highest rate among those whose p99 is within the target; if none is,
/// the one with the highest rate.
fn best(results: &[LevelResult]) -> Option<&LevelResult> {
    let by_rate = |a: &&LevelResult, b: &&LevelResult| a.rate().total_cmp(&b.rate());
    results
        .iter()
        .filter(|result| result.p99_ms <= P99_TARGET_MS)
        .max_by(by_rate)
        .or_else(|| results.iter().max_by(by_rate))
}

/// pushgate's settings: the `unified_push` role only, `database_url`, every cap and rate limit
/// out of the way of the store.
fn settings(database_url: &str, component_port: u16, address: SocketAddr) -> String {
    let key = STANDARD.encode([7u8; 32]);
    format!(
        r#"[component]
jid = "{COMPONENT}"
host = "127.0.0.1"
port = {component_port}
secret = "{COMPONENT_SECRET}"
roles = ["unified_push"]

[database]
url = "{database_url}"

[http]
listen = "{address}"
public_url = "http://{address}"
# Every connection comes from 127.0.0.1, and a level's may overlap the last one's closing.
max_connections_per_address = 0

[unified_push]
keys = ["{key}"]
max_messages_per_owner = 100000000
max_messages_total = 100000000
endpoint_rate = 1000000
endpoint_burst = 1000000
client_rate = 1000000
client_burst = 1000000

[log]
level = "warn"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Usage;

    fn result(connections: usize, stores: u64, p99_ms: f64) -> LevelResult {
        LevelResult {
            stored_before: 0,
            connections,
            stores,
            created: stores,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            others: Default::default(),
            pushgate: Usage {
                wall: Duration::from_secs(1),
                ..Usage::default()
            },
            driver: Usage::default(),
            busy_cores: 1.0,
        }
    }

    #[test]
    fn the_best_level_keeps_p99_within_the_target() {
        let results = [
            result(16, 4_000, 5.0),
            result(64, 6_000, 20.0),
            result(256, 7_000, 80.0),
        ];
        assert_eq!(best(&results).map(|r| r.connections), Some(64));
        let slow = [result(16, 1_000, 60.0), result(64, 2_000, 90.0)];
        assert_eq!(best(&slow).map(|r| r.connections), Some(64));
        assert!(best(&[]).is_none());
        let verdicts = targets(Kind::Sqlite, &results, &slow);
        assert_eq!(verdicts.len(), 4);
        assert!(verdicts[0].passed() && verdicts[1].passed());
        assert!(!verdicts[2].passed() && !verdicts[3].passed());
        assert!(targets(Kind::MariaDb, &results, &slow).is_empty());
    }

    #[test]
    fn settings_raise_the_caps_and_keep_the_database_defaults() {
        let address = SocketAddr::from(([127, 0, 0, 1], 8080));
        let text = settings("sqlite:///tmp/x/pushgate.db?mode=rwc", 5347, address);
        assert!(text.contains("roles = [\"unified_push\"]"), "{text}");
        assert!(text.contains("max_messages_total = 100000000"), "{text}");
        assert!(text.contains("max_connections_per_address = 0"), "{text}");
        let database = text.split("[database]").nth(1).unwrap_or_default();
        let database = database.split("\n[").next().unwrap_or_default();
        assert_eq!(
            database.trim(),
            "url = \"sqlite:///tmp/x/pushgate.db?mode=rwc\""
        );
        assert!(!text.contains("[runtime]"), "{text}");
    }
}
