//! `unifiedpush`: RFC 8030 POST → IQ `<push/>` → the client's answer → 201, through a real
//! Prosody (issue "UnifiedPush provider" item 7).
//!
//! Prosody serves `example.test` and the component; pushgate (release) links to it with the
//! `unified_push` role; one logged-in client registers endpoints and answers every push at
//! once; keep-alive HTTP connections (1, 16, 64) post 3000-byte bodies to those endpoints.
//! Then the same through the Matrix Push Gateway (issue "A Matrix push gateway"): each
//! connection posts `notify` requests naming an endpoint as pushkey, whose relayed
//! notification is as large as the POSTed bodies; its CPU per push is compared with the
//! POST's at each level.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use pushgate_testkit::c2s_client::stanza::{self, Element};
use pushgate_testkit::c2s_client::{C2sClient, C2sConfig, C2sError};
use pushgate_testkit::free_port::free_loopback_port;
use pushgate_testkit::prosody::{ProsodyInstance, ProsodyOptions};
use tokio::task::JoinHandle;

use crate::error::BenchError;
use crate::http_load::{self, Load, LoadResult, MEASURING, STOPPING, WARMING_UP};
use crate::proc_stats::{self, ClockTick, megabytes};
use crate::pushgate_process::PushgateProcess;
use crate::report::{Verdict, print_targets};
use crate::sampler::Sampler;
use crate::sampler::Usage;

pub(crate) const DOMAIN: &str = "example.test";
pub(crate) const COMPONENT: &str = "push.example.test";
pub(crate) const COMPONENT_SECRET: &str = "bench-component-secret";
pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "alicepass";
/// The namespace of UnifiedPush over XMPP (docs/protocol.md A.3).
pub(crate) const UNIFIED_PUSH: &str = "http://gultsch.de/xmpp/drafts/unified-push";
/// Endpoints the client registers; the connections post to them in turn.
const ENDPOINTS: usize = 64;
const BODY_BYTES: usize = 3000;
const CONNECTION_LEVELS: [usize; 3] = [1, 16, 64];
const WARMUP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(5);
/// Target of the issue: pushgate's CPU per push.
const CPU_TARGET_US: f64 = 25.0;
/// Target of the Matrix gateway issue: a notify costs at most this many POSTs of its size.
const NOTIFY_OVER_POST_TARGET: f64 = 1.5;

/// Runs the benchmark against the binary at `pushgate` and prints the results; with `only`,
/// just the level with that many connections.
pub async fn run(pushgate: &Path, only: Option<usize>) -> Result<(), BenchError> {
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

    let http_port = free_loopback_port().map_err(BenchError::io("find a free port"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], http_port));
    let dir = PushgateProcess::workdir()?;
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("pushgate.db").display()
    );
    let settings = settings(&database, prosody.component_port(), address);
    let mut process = PushgateProcess::start(pushgate, dir, &settings)?;
    let pid = process.pid();

    let mut config = C2sConfig::new(prosody.c2s_port(), DOMAIN, USER, PASSWORD);
    config.resource = "phone".to_owned();
    let client = C2sClient::connect(config).await?;
    let paths = register_endpoints(&client, &mut process).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = proc_stats::memory(pid).map_err(BenchError::io("read pushgate's memory"))?;

    let answered = Arc::new(AtomicU64::new(0));
    let stop_answering = Arc::new(AtomicBool::new(false));
    let answering = answer_pushes(client, Arc::clone(&answered), Arc::clone(&stop_answering));

    let body: Bytes = (0..BODY_BYTES)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let notifies: Vec<Bytes> = paths
        .iter()
        .map(|path| matrix_notify(&format!("http://{address}{path}"), BODY_BYTES))
        .collect();
    let post_load = Load {
        address,
        paths: Arc::new(paths),
        body,
        ttl: 60,
        matrix_notifies: None,
    };
    let notify_load = Load {
        matrix_notifies: Some(Arc::new(notifies)),
        ..post_load.clone()
    };
    println!(
        "pushgate idle RSS (linked, endpoints registered): {:.1} MB",
        megabytes(idle.rss_kib)
    );
    let pids = [pid, prosody_pid, std::process::id()];
    let levels: Vec<usize> = CONNECTION_LEVELS
        .into_iter()
        .filter(|connections| only.is_none_or(|only| only == *connections))
        .collect();
    let mut verdicts = Vec::new();
    let mut post_cpu = Vec::new();
    for (load, title, ok_status) in [
        (
            &post_load,
            format!(
                "unifiedpush: POST ({BODY_BYTES}-byte body) -> IQ via Prosody -> client result -> 201, {ENDPOINTS} endpoints of one client"
            ),
            201,
        ),
        (
            &notify_load,
            format!(
                "unifiedpush, Matrix gateway: POST /_matrix/push/v1/notify (a {BODY_BYTES}-byte notification for one own endpoint) -> IQ via Prosody -> client result -> 200"
            ),
            200,
        ),
    ] {
        println!("{title}");
        print_header();
        for &connections in &levels {
            process.ensure_running()?;
            let (pushes, pushgate_usage) =
                run_level(load, connections, ok_status, &pids, tick).await?;
            let cpu = pushgate_usage.cpu_us_per(pushes);
            if load.matrix_notifies.is_none() {
                verdicts.push(Verdict::at_most(
                    format!("pushgate CPU per push at {connections} connections"),
                    cpu,
                    CPU_TARGET_US,
                    "µs",
                ));
                post_cpu.push((connections, cpu));
            } else if let Some((_, post)) = post_cpu.iter().find(|(c, _)| *c == connections) {
                verdicts.push(Verdict::at_most(
                    format!(
                        "notify over POST, CPU per push at {connections} connections ({cpu:.1} / {post:.1} µs)"
                    ),
                    cpu / post,
                    NOTIFY_OVER_POST_TARGET,
                    "×",
                ));
            }
        }
    }
    println!(
        "client answered {} pushes in all (warm-ups included)",
        answered.load(Ordering::Relaxed)
    );
    print_targets(&verdicts);

    stop_answering.store(true, Ordering::Release);
    process.ensure_running()?;
    let clean = process.stop().await;
    println!(
        "pushgate stopped {}",
        if clean { "cleanly" } else { "by SIGKILL" }
    );
    if let Ok(client) = answering.await {
        let _ = client.close().await;
    }
    drop(prosody);
    Ok(())
}

fn print_header() {
    println!(
        "{:>11} {:>9} {:>9} {:>7} {:>7} {:>13} {:>12} {:>9} {:>10} {:>13} {:>13} {:>13} {:>7} {:>11}  other statuses",
        "connections",
        "pushes",
        "pushes/s",
        "p50 ms",
        "p99 ms",
        "pushgate µs",
        "(stat ticks)",
        "user µs",
        "kernel µs",
        "Prosody CPU",
        "Prosody µs",
        "driver µs",
        "RSS MB",
        "busy cores"
    );
}

/// One level: `connections` post `load` for the window; prints its row and returns the pushes
/// answered `ok_status` and pushgate's use of the machine.
async fn run_level(
    load: &Load,
    connections: usize,
    ok_status: u16,
    pids: &[u32; 3],
    tick: ClockTick,
) -> Result<(u64, Usage), BenchError> {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let workers = http_load::start(load, connections, &phase);
    tokio::time::sleep(WARMUP).await;
    let sampler = Sampler::start(pids, tick);
    phase.store(MEASURING, Ordering::Release);
    tokio::time::sleep(WINDOW).await;
    phase.store(STOPPING, Ordering::Release);
    let window = sampler.finish();
    let mut result: LoadResult = http_load::finish(workers).await?;
    let [pushgate_usage, prosody_usage, driver_usage] = [0, 1, 2].map(|i| window.process(i));
    let pushes = result.statuses.get(&ok_status).copied().unwrap_or(0);
    let others: BTreeMap<u16, u64> = result
        .statuses
        .iter()
        .filter(|(status, _)| **status != ok_status)
        .map(|(status, count)| (*status, *count))
        .collect();
    println!(
        "{:>11} {:>9} {:>9.0} {:>7.2} {:>7.2} {:>13.1} {:>12.1} {:>9.1} {:>10.1} {:>12.0}% {:>13.1} {:>13.1} {:>7.1} {:>11.2}  {}",
        connections,
        pushes,
        pushes as f64 / pushgate_usage.wall.as_secs_f64(),
        result.latencies.percentile_ms(50.0),
        result.latencies.percentile_ms(99.0),
        pushgate_usage.cpu_us_per(pushes),
        pushgate_usage.cpu_ticks.as_secs_f64() * 1e6 / pushes.max(1) as f64,
        pushgate_usage.cpu_us_per(pushes) * (1.0 - pushgate_usage.system_share()),
        pushgate_usage.cpu_us_per(pushes) * pushgate_usage.system_share(),
        prosody_usage.cpu_share() * 100.0,
        prosody_usage.cpu_us_per(pushes),
        driver_usage.cpu_us_per(pushes),
        megabytes(pushgate_usage.max_rss_kib),
        window.machine_busy_cores,
        if others.is_empty() {
            "none".to_owned()
        } else {
            format!("{others:?}")
        }
    );
    Ok((pushes, pushgate_usage))
}

/// A Matrix `notify` for the endpoint at `pushkey`, `event_id_only` as Element sets its
/// pusher, with `content` padded so the notification the client receives is `size` bytes.
fn matrix_notify(pushkey: &str, size: usize) -> Bytes {
    let notification = |padding: &str| {
        serde_json::json!({"notification": {
            "event_id": "$bench-event-0123456789abcdef:example.org",
            "room_id": "!bench-room:example.org",
            "counts": {"unread": 1},
            "prio": "high",
            "content": {"body": padding},
        }})
    };
    let bare = notification("").to_string().len();
    let padding = "x".repeat(size.saturating_sub(bare));
    let mut body = notification(&padding);
    body["notification"]["devices"] = serde_json::json!([
        {"app_id": "im.vector.app.android", "pushkey": pushkey,
         "data": {"url": "https://example.org/_matrix/push/v1/notify", "format": "event_id_only"}}
    ]);
    Bytes::from(body.to_string())
}

/// Back to Prosody's global section (a `VirtualHost` with an option table returns there) to
/// log warnings only: its default debug log would cost more than the routing measured here.
pub(crate) const QUIET_PROSODY: &str = r#"
VirtualHost "example.test" { }
log = { warn = "*console" }
"#;

/// pushgate's settings: the `unified_push` role on `database_url`, every rate limit out of the
/// way.
pub(crate) fn settings(database_url: &str, component_port: u16, address: SocketAddr) -> String {
    let key = STANDARD.encode([7u8; 32]);
    format!(
        r#"[component]
jid = "{COMPONENT}"
host = "127.0.0.1"
port = {component_port}
secret = "{COMPONENT_SECRET}"
max_concurrent_iqs = 4096
roles = ["unified_push"]

[database]
url = "{database_url}"

[http]
listen = "{address}"
public_url = "http://{address}"

[unified_push]
keys = ["{key}"]
push_timeout = "5s"
endpoint_rate = 1000000
endpoint_burst = 1000000
client_rate = 1000000
client_burst = 1000000

[log]
level = "warn"
"#,
    )
}

/// Prosody's process id from its pidfile (written at start when it does not daemonize).
pub(crate) async fn prosody_pid(dir: &Path) -> Result<u32, BenchError> {
    let pidfile = dir.join("prosody.pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Protocol(format!(
                "Prosody wrote no pid to {}",
                pidfile.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers [`ENDPOINTS`] endpoints (docs/protocol.md A.3) and returns their paths. Retries
/// while pushgate is still linking up (Prosody answers for a missing component itself).
pub(crate) async fn register_endpoints(
    client: &C2sClient,
    process: &mut PushgateProcess,
) -> Result<Vec<String>, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut paths = Vec::with_capacity(ENDPOINTS);
    while paths.len() < ENDPOINTS {
        let index = paths.len();
        let application = STANDARD.encode([index as u8; 32]);
        let instance = STANDARD.encode([(index as u8) ^ 0x5a; 32]);
        let register = stanza::element(
            "register",
            UNIFIED_PUSH,
            &[("application", &application), ("instance", &instance)],
        );
        let answer = client.iq(stanza::iq("set", COMPONENT, register)).await?;
        match endpoint_path(&answer) {
            Some(path) => paths.push(path),
            None if index == 0 && Instant::now() < deadline => {
                process.ensure_running()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => {
                return Err(BenchError::Pushgate(format!(
                    "registration answered without an endpoint: {}",
                    String::from(&answer)
                )));
            }
        }
    }
    Ok(paths)
}

/// The path of the endpoint in a `<registered endpoint=…/>` answer.
pub(crate) fn endpoint_path(answer: &Element) -> Option<String> {
    if answer.attr("type") != Some("result") {
        return None;
    }
    let endpoint = answer
        .get_child("registered", UNIFIED_PUSH)?
        .attr("endpoint")?;
    let after_scheme = endpoint.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    Some(path.to_owned())
}

/// Answers every `<push/>` with an empty result at once; returns the client when told to stop
/// or when the stream ends.
pub(crate) fn answer_pushes(
    mut client: C2sClient,
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<C2sClient> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Acquire) {
            match client.recv_timeout(Duration::from_millis(200)).await {
                Ok(incoming) => {
                    let is_push = incoming.name() == "iq"
                        && incoming.attr("type") == Some("set")
                        && incoming.get_child("push", UNIFIED_PUSH).is_some();
                    if is_push {
                        if client.send(stanza::iq_result_to(&incoming)).await.is_err() {
                            break;
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(C2sError::Timeout(..)) => {}
                Err(_) => break,
            }
        }
        client
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_relays_a_notification_of_the_size_asked_for_its_endpoint() {
        let body = matrix_notify("http://127.0.0.1:1/push/v2.local.abc", 3000);
        let mut value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            value["notification"]["devices"][0]["pushkey"],
            "http://127.0.0.1:1/push/v2.local.abc"
        );
        let relayed = value["notification"]
            .as_object_mut()
            .map(|notification| notification.remove("devices"));
        assert!(relayed.is_some());
        assert_eq!(value.to_string().len(), 3000);
    }

    #[test]
    fn the_endpoint_path_comes_from_a_registered_answer() {
        let answer: Element = "<iq xmlns='jabber:client' type='result' id='c2s-1'>\
<registered xmlns='http://gultsch.de/xmpp/drafts/unified-push' \
endpoint='http://127.0.0.1:8080/push/v2.local.abc' expiration='2026-11-29T00:00:00Z'/></iq>"
            .parse()
            .expect("well-formed");
        assert_eq!(
            endpoint_path(&answer).as_deref(),
            Some("/push/v2.local.abc")
        );
        let refused: Element = "<iq xmlns='jabber:client' type='error' id='c2s-1'>\
<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            .parse()
            .expect("well-formed");
        assert_eq!(endpoint_path(&refused), None);
    }
}
