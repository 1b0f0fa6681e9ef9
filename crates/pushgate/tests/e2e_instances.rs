//! Instances on one PostgreSQL database in front of a real Prosody, which accepts one
//! connection per component: one holds the link (its lease is an advisory lock), the others
//! stand by and serve HTTP, handing their pushes to the holder; when the holder is killed or
//! hangs, a standby holds the link within two seconds, and no message that got 201 is lost.
//!
//! Runs when `PUSHGATE_TEST_POSTGRES_URL` names a PostgreSQL server (CI sets it); skipped
//! with a printed reason otherwise, and when Prosody is not installed unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::http::{request, split_url};
use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::stanza::iq_result_to;
use pushgate_testkit::conversations::{
    decode_push_content, read_up_push, read_up_registered, up_hash, up_register,
};
use pushgate_testkit::interop::notice;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _};

/// The instance id in a `/health` body, which also says the link is `single`.
async fn instance_of(pushgate: &Pushgate) -> String {
    let (_, body) = pushgate.health().await.unwrap();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["links"][0]["mode"], "single");
    health["instance"].as_str().unwrap().to_owned()
}

/// The link's state in a `/health` body.
async fn link_state(pushgate: &Pushgate) -> Option<String> {
    let (_, body) = pushgate.health().await?;
    let health: serde_json::Value = serde_json::from_str(&body).ok()?;
    health["links"][0]["state"].as_str().map(str::to_owned)
}

async fn wait_for_state(pushgate: &Pushgate, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if link_state(pushgate).await.as_deref() == Some(state) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not {state} within {within:?} (now {:?}):\n{}",
            link_state(pushgate).await,
            pushgate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_holds_the_prosody_link_within_two_seconds_of_the_holder_s_death() {
    let test = "a_standby_holds_the_prosody_link_within_two_seconds_of_the_holder_s_death";
    let Some(server_url) = std::env::var("PUSHGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        notice(&format!(
            "SKIPPED {test}: PUSHGATE_TEST_POSTGRES_URL is not set"
        ));
        return;
    };
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    // A schema of the test's own on the shared server.
    let schema = format!("pushgate_e2e_{:016x}", rand_u64());
    let mut admin = PgConnection::connect(&server_url).await.unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let separator = if server_url.contains('?') { '&' } else { '?' };
    let url = format!("{server_url}{separator}options=-c%20search_path%3D{schema}");

    let options = || {
        let mut options = PushgateOptions::new(server.component_port());
        options.database_url = Some(url.clone());
        options
    };
    // Healthy (`/health` 200) as soon as it stands by; the link is up once the lease is taken.
    let mut first = Pushgate::start(options()).await;
    wait_for_state(&first, "up", Duration::from_secs(5)).await;
    // The second is healthy on standby: it serves HTTP, and holds no link.
    let second = Pushgate::start(options()).await;
    wait_for_state(&second, "standby", Duration::from_secs(5)).await;
    let conflicts = "Second component attempted to connect";
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.log_count(conflicts), 0, "the standby never tried");

    // `pushgate stats` lists both, and which one holds the link; `/health` names each.
    let (first_id, second_id) = (instance_of(&first).await, instance_of(&second).await);
    assert_ne!(first_id, second_id);
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["stats", "--json", "--config"])
        .arg(first.config_path())
        .output()
        .unwrap();
    assert!(stats.status.success(), "{stats:?}");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let instances = stats["instances"].as_array().unwrap();
    let listed = |id: &str| {
        instances
            .iter()
            .find(|instance| instance["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {stats}"))
            .clone()
    };
    assert_eq!(instances.len(), 2, "{stats}");
    assert_eq!(listed(&first_id)["holds"], serde_json::json!([COMPONENT]));
    assert_eq!(listed(&second_id)["holds"], serde_json::json!([]));
    assert_eq!(listed(&first_id)["address"], "127.0.0.1");
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["stats", "--config"])
        .arg(second.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("instances running: 2"), "{text}");
    assert!(
        text.lines()
            .any(|line| line.contains(&first_id) && line.ends_with(&format!("holds {COMPONENT}"))),
        "{text}"
    );

    // The holder dies without a word: the standby holds the link within two seconds.
    first.kill();
    let took = wait_for_state(&second, "up", Duration::from_secs(2)).await;
    notice(&format!(
        "{test}: the standby held the link {took:?} after SIGKILL"
    ));
    assert_eq!(server.log_count(conflicts), 0, "never two components");

    // And it serves: a client registers through the new holder.
    let alice = server.login("alice", "phone").await;
    let answer = alice
        .iq(up_register(
            COMPONENT,
            &up_hash("account", "app"),
            &up_hash("account", "instance"),
        ))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    assert!(endpoint.contains("/push/v2.local."), "{endpoint}");
    alice.close().await.unwrap();

    drop(second);
    drop(first);
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .unwrap();
}

fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32
}

/// A schema of a test's own on the shared PostgreSQL server, and the URL that uses it.
struct Schema {
    admin: PgConnection,
    name: String,
    url: String,
}

impl Schema {
    async fn create(server_url: &str) -> Self {
        let name = format!("pushgate_e2e_{:016x}", rand_u64());
        let mut admin = PgConnection::connect(server_url).await.unwrap();
        admin
            .execute(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .await
            .unwrap();
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{separator}options=-c%20search_path%3D{name}");
        Self { admin, name, url }
    }

    async fn drop_schema(mut self) {
        self.admin
            .execute(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .await
            .unwrap();
    }
}

fn postgres_or_skip(test: &str) -> Option<String> {
    let url = std::env::var("PUSHGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    if url.is_none() {
        notice(&format!(
            "SKIPPED {test}: PUSHGATE_TEST_POSTGRES_URL is not set"
        ));
    }
    url
}

/// The instance whose `/health` says the link is up, if exactly one of `candidates` does.
async fn holder(instances: &[Pushgate], candidates: &[usize]) -> Option<usize> {
    let mut up = Vec::new();
    for &index in candidates {
        if link_state(&instances[index]).await.as_deref() == Some("up") {
            up.push(index);
        }
    }
    assert!(up.len() <= 1, "two instances hold the link: {up:?}");
    up.first().copied()
}

/// Waits until one of `candidates` holds the link; which, and how long it took.
async fn wait_for_holder(
    instances: &[Pushgate],
    candidates: &[usize],
    within: Duration,
) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        if let Some(index) = holder(instances, candidates).await {
            return (index, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "no instance held the link within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An instance with the `unified_push` role on `schema`, logging at info, with the limits
/// out of the way: one endpoint takes all the load, from one address.
fn loaded_unified_push(server: &XmppServer, schema: &Schema) -> PushgateOptions {
    let mut options = PushgateOptions::new(server.component_port());
    options.database_url = Some(schema.url.clone());
    options.roles = vec!["unified_push"];
    options.log_level = "info";
    options.unified_push_extra = "max_messages_per_owner = 100000\n\
         endpoint_rate = 2000\nendpoint_burst = 4000\n\
         client_rate = 4000\nclient_burst = 8000\n";
    options
}

/// What the POSTs got.
#[derive(Default)]
struct Posted {
    /// Bodies answered 201.
    created: HashSet<String>,
    /// Status codes other than 201, with a body each.
    other: Vec<(u16, String)>,
    /// POSTs whose connection failed (the instance was killed under them).
    failed: usize,
    /// Latency of 201s by whether the instance held the link when the POST was sent.
    holder_latency: Vec<Duration>,
    standby_latency: Vec<Duration>,
}

/// Three instances behind Prosody; 200 POSTs a second for 60 s go to random live
/// instances while the holder is killed five times and frozen once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_prosody_lose_no_accepted_message_through_kills_and_a_freeze() {
    let test = "three_instances_on_prosody_lose_no_accepted_message_through_kills_and_a_freeze";
    let Some(server_url) = postgres_or_skip(test) else {
        return;
    };
    let Some(server) = XmppServer::start_for_instances(ServerKind::Prosody, test, &["alice"]).await
    else {
        return;
    };
    let schema = Schema::create(&server_url).await;
    let options = || loaded_unified_push(&server, &schema);
    let mut instances = vec![Pushgate::start(options()).await];
    wait_for_state(&instances[0], "up", Duration::from_secs(5)).await;
    for _ in 0..2 {
        let standby = Pushgate::start(options()).await;
        wait_for_state(&standby, "standby", Duration::from_secs(5)).await;
        instances.push(standby);
    }

    // The client: registers, then takes every push and answers it.
    let mut alice = server.login("alice", "phone").await;
    let answer = alice
        .iq(up_register(
            COMPONENT,
            &up_hash("account", "app"),
            &up_hash("account", "instance"),
        ))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    let (_, path) = split_url(&endpoint);
    let received: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client_done = Arc::new(AtomicBool::new(false));
    let client = {
        let received = Arc::clone(&received);
        let done = Arc::clone(&client_done);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let Ok(stanza) = alice.recv_timeout(Duration::from_millis(200)).await else {
                    continue;
                };
                if let Some(push) = read_up_push(&stanza) {
                    let body = decode_push_content(&push.content).unwrap();
                    received
                        .lock()
                        .unwrap()
                        .insert(String::from_utf8(body).unwrap());
                    alice.send(iq_result_to(&stanza)).await.unwrap();
                }
            }
            alice
        })
    };

    // The load: 200 POSTs a second to random instances among those alive (as a load
    // balancer would), each body unique.
    let targets: Arc<Mutex<Vec<(SocketAddr, bool)>>> = Arc::new(Mutex::new(
        instances
            .iter()
            .enumerate()
            .map(|(index, instance)| (instance.http_address(), index == 0))
            .collect(),
    ));
    let posted: Arc<Mutex<Posted>> = Arc::default();
    let load_done = Arc::new(AtomicBool::new(false));
    let load = {
        let targets = Arc::clone(&targets);
        let posted = Arc::clone(&posted);
        let done = Arc::clone(&load_done);
        let path = path.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(5));
            let mut posts = tokio::task::JoinSet::new();
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                ticker.tick().await;
                n += 1;
                let Some((address, to_holder)) = ({
                    let targets = targets.lock().unwrap();
                    (!targets.is_empty())
                        .then(|| targets[usize::try_from(n).unwrap() % targets.len()])
                }) else {
                    continue;
                };
                let posted = Arc::clone(&posted);
                let path = path.clone();
                posts.spawn(async move {
                    let body = format!("message {n}");
                    let sent = Instant::now();
                    let answer = request(
                        address,
                        "POST",
                        &path,
                        &[("Content-Encoding", "aes128gcm"), ("TTL", "86400")],
                        body.as_bytes(),
                        Duration::from_secs(30),
                    )
                    .await;
                    let took = sent.elapsed();
                    let mut posted = posted.lock().unwrap();
                    match answer {
                        Ok(answer) if answer.status == 201 => {
                            posted.created.insert(body);
                            if to_holder {
                                posted.holder_latency.push(took);
                            } else {
                                posted.standby_latency.push(took);
                            }
                        }
                        Ok(answer) => posted.other.push((answer.status, answer.text())),
                        Err(_) => posted.failed += 1,
                    }
                });
                while posts.try_join_next().is_some() {}
            }
            while posts.join_next().await.is_some() {}
        })
    };

    let set_targets = |instances: &[Pushgate], live: &[usize], holder: Option<usize>| {
        *targets.lock().unwrap() = live
            .iter()
            .map(|&index| (instances[index].http_address(), Some(index) == holder))
            .collect();
    };
    let all = [0, 1, 2];
    let started = Instant::now();
    let mut takeovers = Vec::new();
    // Five kills, then a freeze, about nine seconds apart.
    for round in 0..6 {
        tokio::time::sleep(Duration::from_secs(8)).await;
        let (leader, _) = wait_for_holder(&instances, &all, Duration::from_secs(2)).await;
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
        set_targets(&instances, &others, None);
        let freeze = round == 5;
        let hit = Instant::now();
        if freeze {
            instances[leader].freeze(true);
        } else {
            instances[leader].kill();
        }
        let (new_leader, _) = wait_for_holder(&instances, &others, Duration::from_secs(2)).await;
        let took = hit.elapsed();
        notice(&format!(
            "{test}: {} {leader}: instance {new_leader} held the link after {took:?}",
            if freeze { "SIGSTOP" } else { "SIGKILL" }
        ));
        takeovers.push(took);
        set_targets(&instances, &others, Some(new_leader));
        if freeze {
            // It wakes fenced: it stands by, and never takes the link back.
            tokio::time::sleep(Duration::from_secs(3)).await;
            instances[leader].freeze(false);
            wait_for_state(&instances[leader], "standby", Duration::from_secs(3)).await;
        } else {
            instances[leader].relaunch().await;
            wait_for_state(&instances[leader], "standby", Duration::from_secs(3)).await;
        }
        set_targets(&instances, &all, Some(new_leader));
    }
    let remaining = Duration::from_secs(60).saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    load_done.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let holder_now = wait_for_holder(&instances, &all, Duration::from_secs(2))
        .await
        .0;

    // Everything that got 201 reaches the client: at once, or from the store.
    let posted = std::mem::take(&mut *posted.lock().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = posted.created.difference(&received.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} messages answered 201 never reached the client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client_done.store(true, Ordering::SeqCst);
    let alice = client.await.unwrap();

    let server_errors: Vec<_> = posted
        .other
        .iter()
        .filter(|(status, _)| *status >= 500)
        .collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
    assert!(
        posted.other.is_empty(),
        "answers other than 201: {:?}",
        posted.other
    );
    takeovers.sort();
    notice(&format!(
        "{test}: {} POSTs answered 201, {} failed to connect (instance killed under them); \
         takeovers: median {:?}, max {:?}",
        posted.created.len(),
        posted.failed,
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1],
    ));
    let median = |mut latencies: Vec<Duration>| {
        latencies.sort();
        latencies.get(latencies.len() / 2).copied()
    };
    notice(&format!(
        "{test}: median POST latency to the holder {:?} ({} POSTs), to a standby {:?} ({} POSTs)",
        median(posted.holder_latency.clone()),
        posted.holder_latency.len(),
        median(posted.standby_latency.clone()),
        posted.standby_latency.len(),
    ));
    assert!(posted.created.len() > 10_000, "{}", posted.created.len());

    // Prosody accepted one component per takeover, and never a second beside the first.
    let authenticated = server.log_count("External component successfully authenticated");
    assert_eq!(server.log_count("Second component attempted to connect"), 0);
    assert_eq!(
        authenticated,
        1 + takeovers.len(),
        "Prosody accepted the component {authenticated} times for {} takeovers",
        takeovers.len()
    );
    assert!(holder_now < 3);

    alice.close().await.unwrap();
    drop(instances);
    schema.drop_schema().await;
}

/// A phone that takes every push (and counts each body), except those for the `refused` apps,
/// which it answers `item-not-found` as Conversations does for an app it no longer knows.
struct Phone {
    received: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    done: Arc<AtomicBool>,
    presences: tokio::sync::mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<pushgate_testkit::c2s_client::C2sClient>,
}

impl Phone {
    fn answering(
        mut client: pushgate_testkit::c2s_client::C2sClient,
        refused: Vec<String>,
    ) -> Self {
        let received: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (presences, mut presence_asked) = tokio::sync::mpsc::unbounded_channel();
        let task = {
            let received = Arc::clone(&received);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    while presence_asked.try_recv().is_ok() {
                        client
                            .send(pushgate_testkit::conversations::directed_presence(
                                COMPONENT,
                            ))
                            .await
                            .unwrap();
                    }
                    let Ok(stanza) = client.recv_timeout(Duration::from_millis(100)).await else {
                        continue;
                    };
                    let Some(push) = read_up_push(&stanza) else {
                        continue;
                    };
                    if refused.contains(&push.application) {
                        client
                            .send(pushgate_testkit::conversations::iq_error_to(
                                &stanza,
                                "cancel",
                                "item-not-found",
                            ))
                            .await
                            .unwrap();
                        continue;
                    }
                    let body = decode_push_content(&push.content).unwrap();
                    *received
                        .lock()
                        .unwrap()
                        .entry(String::from_utf8(body).unwrap())
                        .or_default() += 1;
                    client.send(iq_result_to(&stanza)).await.unwrap();
                }
                client
            })
        };
        Self {
            received,
            done,
            presences,
            task,
        }
    }

    /// Sends available presence to the component, as Conversations does when it connects.
    fn send_presence(&self) {
        self.presences.send(()).unwrap();
    }

    fn count(&self, body: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .get(body)
            .copied()
            .unwrap_or(0)
    }

    async fn hang_up(self) -> pushgate_testkit::c2s_client::C2sClient {
        self.done.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// One counter's value in a `/metrics` text.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(pushgate: &Pushgate) -> String {
    let address = pushgate.metrics_address().unwrap();
    request(address, "GET", "/metrics", &[], b"", Duration::from_secs(5))
        .await
        .unwrap()
        .text()
}

async fn post(address: SocketAddr, path: &str, body: &str) -> (u16, Duration) {
    let sent = Instant::now();
    let answer = request(
        address,
        "POST",
        path,
        &[("Content-Encoding", "aes128gcm"), ("TTL", "86400")],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    (answer.status, sent.elapsed())
}

/// Three instances, each with its own link to ejabberd (`mode = "shared"`), which routes each
/// stanza to any of them: POSTs to any instance are answered as on one, though the client's
/// answers land on random instances; kept messages are flushed once; and an instance killed
/// under load loses nothing that got 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_ejabberd_link_and_answer_as_one() {
    let test = "three_instances_share_the_ejabberd_link_and_answer_as_one";
    let Some(server_url) = postgres_or_skip(test) else {
        return;
    };
    let Some(server) =
        XmppServer::start_for_instances(ServerKind::Ejabberd, test, &["alice"]).await
    else {
        return;
    };
    let schema = Schema::create(&server_url).await;
    let options = || {
        let mut options = loaded_unified_push(&server, &schema);
        options.component_extra = "mode = \"shared\"";
        options.metrics = true;
        options
    };
    let mut instances = Vec::new();
    for _ in 0..3 {
        let instance = Pushgate::start(options()).await;
        wait_for_state(&instance, "up", Duration::from_secs(5)).await;
        instances.push(instance);
    }
    let addresses: Vec<SocketAddr> = instances.iter().map(Pushgate::http_address).collect();

    let alice = server.login("alice", "phone").await;
    let register = |app: &str| {
        up_register(
            COMPONENT,
            &up_hash("account", app),
            &up_hash("account", "instance"),
        )
    };
    let answer = alice.iq(register("app")).await.unwrap();
    let (_, path) = split_url(&read_up_registered(&answer, COMPONENT).unwrap().endpoint);
    // Apps the phone no longer knows.
    let gone: Vec<String> = (0..10).map(|n| format!("gone {n}")).collect();
    let mut gone_paths = Vec::new();
    for app in &gone {
        let answer = alice.iq(register(app)).await.unwrap();
        let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
        gone_paths.push(split_url(&endpoint).1);
    }
    let refused: Vec<String> = gone.iter().map(|app| up_hash("account", app)).collect();
    let phone = Phone::answering(alice, refused.clone());

    // 1. Every POST, to any instance, is delivered at once: the client's answer found the
    // instance that asked, wherever ejabberd routed it.
    for n in 0..60 {
        let body = format!("online {n}");
        let (status, took) = post(addresses[n % 3], &path, &body).await;
        assert_eq!(status, 201, "{body}");
        assert!(
            took < Duration::from_secs(2),
            "{body} took {took:?}: kept, not delivered"
        );
        assert_eq!(phone.count(&body), 1, "{body}");
    }
    let mut forwarded = 0.0;
    for instance in &instances {
        let metrics = scrape(instance).await;
        forwarded += counter(
            &metrics,
            "pushgate_forwarded_answers_total{event=\"resolved\"}",
        );
        assert_eq!(
            counter(
                &metrics,
                "pushgate_forwarded_answers_total{event=\"unknown\"}"
            ),
            0.0
        );
    }
    notice(&format!(
        "{test}: {forwarded} of 60 answers reached another instance and were forwarded"
    ));
    assert!(forwarded >= 10.0, "{forwarded}");

    // 2. The client revokes an endpoint, its item-not-found landing on another instance than
    // the one that asked (tried with fresh endpoints until ejabberd routes it so): 404 there
    // as on one instance, then at every instance.
    let resolved = "pushgate_forwarded_answers_total{event=\"resolved\"}";
    let mut revoked_across = None;
    for path in &gone_paths {
        let before = counter(&scrape(&instances[0]).await, resolved);
        let (status, _) = post(addresses[0], path, "to a revoked app").await;
        assert_eq!(status, 404);
        if counter(&scrape(&instances[0]).await, resolved) > before {
            revoked_across = Some(path.clone());
            break;
        }
    }
    let gone_path = revoked_across.expect("no item-not-found was routed to another instance");
    for &address in &addresses {
        let (status, _) = post(address, &gone_path, "again").await;
        assert_eq!(status, 404);
    }

    // 3. Offline: kept by whichever instance took the POST, flushed once when it comes back,
    // though its presence reaches several instances.
    let alice = phone.hang_up().await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..30 {
        let (status, _) = post(addresses[n % 3], &path, &format!("kept {n}")).await;
        assert_eq!(status, 201);
    }
    let alice = server.login("alice", "phone").await;
    let phone = Phone::answering(alice, refused);
    // Each presence is routed to one instance; three of them likely reach several.
    for _ in 0..3 {
        phone.send_presence();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while (0..30).any(|n| phone.count(&format!("kept {n}")) == 0) {
        assert!(Instant::now() < deadline, "kept messages not flushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..30 {
        assert_eq!(phone.count(&format!("kept {n}")), 1, "kept {n}");
    }

    // 4. Under load, an instance is killed: nothing that got 201 is lost.
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let live = Arc::new(Mutex::new(addresses.clone()));
    let load = {
        let created = Arc::clone(&created);
        let live = Arc::clone(&live);
        let path = path.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            let mut posts = tokio::task::JoinSet::new();
            for n in 0..1000usize {
                ticker.tick().await;
                let address = {
                    let live = live.lock().unwrap();
                    live[n % live.len()]
                };
                let created = Arc::clone(&created);
                let path = path.clone();
                posts.spawn(async move {
                    let body = format!("load {n}");
                    let answer = request(
                        address,
                        "POST",
                        &path,
                        &[("Content-Encoding", "aes128gcm"), ("TTL", "86400")],
                        body.as_bytes(),
                        Duration::from_secs(30),
                    )
                    .await;
                    match answer {
                        Ok(answer) if answer.status == 201 => created.lock().unwrap().push(body),
                        Ok(answer) => {
                            assert!(answer.status < 500, "{body}: {}", answer.status);
                        }
                        // Killed under it: no answer, no promise.
                        Err(_) => {}
                    }
                });
            }
            while posts.join_next().await.is_some() {}
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    live.lock()
        .unwrap()
        .retain(|address| *address != addresses[2]);
    instances[2].kill();
    load.await.unwrap();
    let created = std::mem::take(&mut *created.lock().unwrap());
    assert!(created.len() > 900, "{}", created.len());
    // The pushes whose answers were routed to the dead instance were kept by the instance
    // that asked (after its push timeout): the client's next presence brings them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    phone.send_presence();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let missing: Vec<&String> = created
            .iter()
            .filter(|body| phone.count(body) == 0)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} messages answered 201 never reached the client: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    notice(&format!(
        "{test}: {} POSTs answered 201 while an instance was killed; all reached the client",
        created.len()
    ));

    phone.hang_up().await.close().await.unwrap();
    drop(instances);
    schema.drop_schema().await;
}

/// The XEP-0357 app server across instances: a registration made through one instance wakes
/// the phone through another, and a token FCM called dead at one instance is honoured by the
/// others (no more requests to FCM for it), though they had the registration cached.
async fn app_server_across_instances(kind: ServerKind, test: &str) {
    use pushgate_testkit::conversations::register_push_fcm;
    use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};

    let Some(server_url) = postgres_or_skip(test) else {
        return;
    };
    let Some(server) = XmppServer::start_for_instances(kind, test, &["alice", "bob"]).await else {
        return;
    };
    let schema = Schema::create(&server_url).await;
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let options = || {
        let mut options = PushgateOptions::new(server.component_port());
        options.database_url = Some(schema.url.clone());
        options.roles = vec!["app_server"];
        options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
        options.metrics = true;
        options.log_level = "info";
        options.component_extra = match kind {
            ServerKind::Prosody => "mode = \"single\"",
            ServerKind::Ejabberd => "mode = \"shared\"",
        };
        options
    };
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Pushgate::start(options()).await);
    }
    let all = [0, 1, 2];
    if kind == ServerKind::Prosody {
        wait_for_holder(&instances, &all, Duration::from_secs(5)).await;
    }

    // Registered through whichever instance takes the command.
    let token = "fcm-token-across";
    let alice = server.login("alice", "phone").await;
    let registration = e2e::register_and_enable(&alice, token, "5a5a5a5a5a5a5a5a").await;
    alice.close().await.unwrap();
    let bob = server.login("bob", "desktop").await;
    let message = || {
        bob.send(pushgate_testkit::c2s_client::stanza::chat_message(
            &format!("alice@{}", e2e::DOMAIN),
            "are you there?",
        ))
    };

    // Woken through another instance: on Prosody the holder that took the registration is
    // killed first; on ejabberd each publish goes to any instance.
    let mut woken_by = 0;
    if kind == ServerKind::Prosody {
        let (holder, _) = wait_for_holder(&instances, &all, Duration::from_secs(2)).await;
        instances[holder].kill();
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != holder).collect();
        wait_for_holder(&instances, &others, Duration::from_secs(2)).await;
        message().await.unwrap();
        assert!(
            e2e::wait_until(Duration::from_secs(10), || fcm.accepted_count() >= 1)
                .await
                .is_some(),
            "no wake-up through the new holder"
        );
        instances[holder].relaunch().await;
    } else {
        for n in 1..=9 {
            message().await.unwrap();
            assert!(
                e2e::wait_until(Duration::from_secs(10), || fcm.accepted_count() >= n)
                    .await
                    .is_some(),
                "wake-up {n} missing"
            );
        }
        for instance in &instances {
            let woken = counter(
                &scrape(instance).await,
                "pushgate_xmpp_publishes_total{outcome=\"woken\"}",
            );
            if woken > 0.0 {
                woken_by += 1;
            }
        }
        notice(&format!(
            "{test}: 9 wake-ups went out through {woken_by} instances"
        ));
        assert!(woken_by >= 2, "every publish reached one instance");
    }
    assert_eq!(fcm.messages()[0].token, token);

    // FCM calls the token dead: the instance that hears it answers item-not-found, and the
    // server drops the registration.
    fcm.set_default_answer(Answer::error(FcmErrorCode::Unregistered));
    let dead_marker = match kind {
        ServerKind::Prosody => "Got error <cancel:item-not-found",
        ServerKind::Ejabberd => "disabling push: item-not-found",
    };
    let before = server.log_count(dead_marker);
    message().await.unwrap();
    assert!(
        e2e::wait_until(Duration::from_secs(10), || server.log_count(dead_marker)
            > before)
        .await
        .is_some(),
        "the dead token was not reported\n{}",
        server.log_tail(40)
    );
    let sends_when_dead = fcm.sends_to(token);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Within a second every instance knows: the phone enables push again with the same node
    // (its app still runs), and publishes reaching any instance are answered item-not-found
    // from the store, never sent to FCM again.
    for round in 0..6 {
        let alice = server.login("alice", "phone").await;
        let enabled = alice
            .iq(pushgate_testkit::conversations::push_enable(
                COMPONENT,
                &registration.node,
                &registration.secret,
            ))
            .await
            .unwrap();
        assert_eq!(
            pushgate_testkit::c2s_client::stanza::stanza_type(&enabled),
            "result"
        );
        alice.close().await.unwrap();
        let before = server.log_count(dead_marker);
        message().await.unwrap();
        assert!(
            e2e::wait_until(Duration::from_secs(10), || server.log_count(dead_marker)
                > before)
            .await
            .is_some(),
            "round {round}: the dead registration was not refused"
        );
        if kind == ServerKind::Prosody && round == 2 {
            // And through another holder.
            let (holder, _) = wait_for_holder(&instances, &all, Duration::from_secs(2)).await;
            instances[holder].kill();
            let others: Vec<usize> = all.iter().copied().filter(|&i| i != holder).collect();
            wait_for_holder(&instances, &others, Duration::from_secs(2)).await;
        }
    }
    assert_eq!(
        fcm.sends_to(token),
        sends_when_dead,
        "an instance woke a token another had called dead"
    );
    // Registering again makes it live: a fresh token reaches FCM.
    fcm.set_default_answer(Answer::success());
    let alice = server.login("alice", "phone").await;
    alice
        .iq(register_push_fcm(
            COMPONENT,
            "fcm-token-fresh",
            "5a5a5a5a5a5a5a5a",
        ))
        .await
        .unwrap();
    let again = e2e::register_and_enable(&alice, "fcm-token-fresh", "5a5a5a5a5a5a5a5a").await;
    assert_eq!(again.node, registration.node);
    alice.close().await.unwrap();
    message().await.unwrap();
    assert!(
        e2e::wait_until(Duration::from_secs(10), || fcm.sends_to("fcm-token-fresh")
            >= 1)
        .await
        .is_some(),
        "the fresh token was not woken"
    );
    bob.close().await.unwrap();
    drop(instances);
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_server_works_across_instances_on_prosody() {
    app_server_across_instances(
        ServerKind::Prosody,
        "the_app_server_works_across_instances_on_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_server_works_across_instances_on_ejabberd() {
    app_server_across_instances(
        ServerKind::Ejabberd,
        "the_app_server_works_across_instances_on_ejabberd",
    )
    .await;
}
