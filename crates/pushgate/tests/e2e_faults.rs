//! Bad days, end to end against real Prosody and real ejabberd: the component link's TCP
//! connection reset every 2 s for a minute while an app server posts 200 messages a second to
//! an online client. Every message answered 201 reaches the client (at least once) within 5 s
//! of the link's next coming up, and at most 1 % of the posts are refused.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::http::post_push;
use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::stanza::iq_result_to;
use pushgate_testkit::conversations::{
    decode_push_content, directed_presence, read_up_push, read_up_registered, up_hash, up_register,
};
use pushgate_testkit::interop::notice;
use pushgate_testkit::tcp_relay::TcpRelay;

const RESOURCE: &str = "Conversations.faults";
const FLAP_EVERY: Duration = Duration::from_secs(2);
const POSTING: Duration = Duration::from_secs(60);
const POSTS_PER_SECOND: u32 = 200;
/// How long after the link's next coming up an accepted message may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_through_prosody_loses_and_holds_back_nothing() {
    flapping_link(
        ServerKind::Prosody,
        "a_flapping_link_through_prosody_loses_and_holds_back_nothing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_through_ejabberd_loses_and_holds_back_nothing() {
    flapping_link(
        ServerKind::Ejabberd,
        "a_flapping_link_through_ejabberd_loses_and_holds_back_nothing",
    )
    .await;
}

/// What the client received: each body with when it first arrived.
type Arrivals = Arc<Mutex<HashMap<Vec<u8>, Instant>>>;

async fn flapping_link(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice"]).await else {
        return;
    };
    let relay = TcpRelay::start(SocketAddr::from(([127, 0, 0, 1], server.component_port())))
        .await
        .unwrap();
    let mut options = PushgateOptions::new(relay.port());
    // One app server posting 200/s to one endpoint: the rate limits are not what is tested.
    options.unified_push_extra = "endpoint_rate = 1000\nendpoint_burst = 2000\n\
                                  client_rate = 1000\nclient_burst = 2000";
    // The test's client opens a connection per POST (hundreds at once while the link is
    // down, each waiting for its answer), all from 127.0.0.1.
    options.http_extra = "max_connections_per_address = 0";
    let pushgate = Pushgate::start(options).await;

    // The client: online, registered, answering every push.
    let alice = server.login("alice", RESOURCE).await;
    alice.send_presence().await.unwrap();
    alice.send(directed_presence(COMPONENT)).await.unwrap();
    let application = up_hash("faults-account", "org.example.app");
    let instance = up_hash("faults-account", "instance");
    let answer = alice
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    let arrivals: Arrivals = Arc::default();
    let receiving = {
        let arrivals = Arc::clone(&arrivals);
        let mut alice = alice;
        tokio::spawn(async move {
            loop {
                let Ok(stanza) = alice.recv_timeout(Duration::from_secs(120)).await else {
                    return;
                };
                let Some(push) = read_up_push(&stanza) else {
                    continue;
                };
                let body = decode_push_content(&push.content).unwrap_or_default();
                arrivals
                    .lock()
                    .unwrap()
                    .entry(body)
                    .or_insert_with(Instant::now);
                let _ = alice.send(iq_result_to(&stanza)).await;
            }
        })
    };

    // The link's TCP connection is reset every 2 s while the posts go on.
    let started = Instant::now();
    let relay = Arc::new(relay);
    let flapping = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move {
            let mut at = started;
            while at + FLAP_EVERY < started + POSTING {
                at += FLAP_EVERY;
                tokio::time::sleep_until(at.into()).await;
                relay.reset_all();
            }
        })
    };
    let total = (POSTING.as_secs() as u32 * POSTS_PER_SECOND) as usize;
    let interval = POSTING / total as u32;
    let mut posts = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let endpoint = endpoint.clone();
        posts.push(tokio::spawn(async move {
            let body = format!("message {i:06}").into_bytes();
            let response = post_push(&endpoint, &body, 3600).await;
            (body, response.status, Instant::now())
        }));
    }
    flapping.await.unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for post in posts {
        let (body, status, answered) = post.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            accepted.push((body, answered));
        } else {
            refused += 1;
        }
    }
    let posted_for = started.elapsed();

    // Every accepted message arrives within 5 s of the link's next coming up after its 201.
    let links_up = relay.connected_at();
    let deadline_of = |answered: Instant| {
        let next_up = links_up
            .iter()
            .copied()
            .find(|up| *up >= answered)
            .unwrap_or(answered);
        next_up.max(answered) + ARRIVAL
    };
    let last_deadline = accepted
        .iter()
        .map(|(_, answered)| deadline_of(*answered))
        .max()
        .unwrap_or_else(Instant::now);
    tokio::time::sleep_until(last_deadline.into()).await;
    let arrived = arrivals.lock().unwrap().clone();
    let mut missing = 0;
    let mut late = 0;
    let mut worst = Duration::ZERO;
    for (body, answered) in &accepted {
        match arrived.get(body) {
            None => missing += 1,
            Some(at) => {
                if *at > deadline_of(*answered) {
                    late += 1;
                }
                worst = worst.max(at.saturating_duration_since(*answered));
            }
        }
    }
    receiving.abort();
    notice(&format!(
        "{kind:?}: {total} posts in {:.1} s, {} resets, {} link connections: {} accepted, {refused} refused, \
         {missing} accepted but never arrived, {late} arrived late; slowest arrival {:.2} s after its 201; \
         statuses {statuses:?}",
        posted_for.as_secs_f64(),
        relay.resets(),
        links_up.len(),
        accepted.len(),
        worst.as_secs_f64(),
    ));
    assert!(
        refused * 100 <= total,
        "{refused} of {total} refused\n{}",
        pushgate
            .log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        (missing, late),
        (0, 0),
        "accepted messages held back or lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_prosody_is_noticed_and_recovered_from() {
    frozen_server(
        ServerKind::Prosody,
        "a_frozen_prosody_is_noticed_and_recovered_from",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_ejabberd_is_noticed_and_recovered_from() {
    frozen_server(
        ServerKind::Ejabberd,
        "a_frozen_ejabberd_is_noticed_and_recovered_from",
    )
    .await;
}

/// The server stops answering (SIGSTOP) for 40 s with its sockets open: with the default
/// keepalive (a ping after 10 s of silence, dead 20 s later) `/health` says the link is down
/// within 30 s, and once the server goes on, the link comes back and delivers again.
async fn frozen_server(kind: ServerKind, test: &str) {
    const FROZEN_FOR: Duration = Duration::from_secs(40);
    let Some(server) = XmppServer::start(kind, test, &["alice"]).await else {
        return;
    };
    let mut pushgate = Pushgate::start(PushgateOptions::new(server.component_port())).await;
    server.freeze(true);
    let frozen_at = Instant::now();
    let noticed = pushgate.wait_unready(Duration::from_secs(35)).await;
    notice(&format!(
        "{kind:?}: a frozen server noticed after {:.1} s",
        noticed.as_secs_f64()
    ));
    assert!(noticed <= Duration::from_secs(31), "{noticed:?}");
    let (status, body) = pushgate.health().await.expect("health answers");
    assert_eq!(status, 503, "{body}");
    tokio::time::sleep_until((frozen_at + FROZEN_FOR).into()).await;
    server.freeze(false);
    let back = pushgate.wait_ready(Duration::from_secs(30)).await;
    notice(&format!(
        "{kind:?}: link up {:.1} s after the server went on",
        back.as_secs_f64()
    ));

    // Delivering works again, end to end.
    let mut alice = server.login("alice", RESOURCE).await;
    alice.send_presence().await.unwrap();
    alice.send(directed_presence(COMPONENT)).await.unwrap();
    let application = up_hash("frozen-account", "org.example.app");
    let instance = up_hash("frozen-account", "instance");
    let answer = alice
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    let posted = tokio::spawn(async move { post_push(&endpoint, b"after the freeze", 60).await });
    let push = alice
        .recv_where(|stanza| read_up_push(stanza).is_some())
        .await
        .expect("no push after the freeze");
    alice.send(iq_result_to(&push)).await.unwrap();
    assert_eq!(posted.await.unwrap().status, 201);
}

/// Registers an app instance for alice, who then goes offline: what is posted is kept.
async fn offline_endpoint(server: &XmppServer, account: &str) -> String {
    let alice = server.login("alice", RESOURCE).await;
    let application = up_hash(account, "org.example.app");
    let instance = up_hash(account, "instance");
    let answer = alice
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    alice.close().await.unwrap();
    endpoint
}

/// Alice comes online and takes pushes until every body of `expected` arrived or `wait`
/// passed; returns the bodies that arrived. Waiting for the bodies themselves, not a count:
/// a POST whose connection a kill cut may still have been stored, and its body arrives too.
async fn come_online_and_collect(
    server: &XmppServer,
    expected: &[Vec<u8>],
    wait: Duration,
) -> std::collections::HashSet<Vec<u8>> {
    let mut alice = server.login("alice", RESOURCE).await;
    alice.send_presence().await.unwrap();
    alice.send(directed_presence(COMPONENT)).await.unwrap();
    let mut bodies = std::collections::HashSet::new();
    let deadline = Instant::now() + wait;
    while expected.iter().any(|body| !bodies.contains(body)) && Instant::now() < deadline {
        let Ok(stanza) = alice
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .await
        else {
            break;
        };
        if let Some(push) = read_up_push(&stanza) {
            bodies.insert(decode_push_content(&push.content).unwrap_or_default());
            alice.send(iq_result_to(&stanza)).await.unwrap();
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_accepted_message() {
    let test = "kill_9_under_load_loses_no_accepted_message";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let mut options = PushgateOptions::new(server.component_port());
    // Every accepted message is kept for one offline client: room for all of them.
    options.unified_push_extra = "max_messages_per_owner = 5000\nendpoint_rate = 1000\n\
                                  endpoint_burst = 2000\nclient_rate = 1000\nclient_burst = 2000";
    let mut pushgate = Pushgate::start(options).await;
    let endpoint = offline_endpoint(&server, "kill-account").await;

    // Posts go on at 100/s while pushgate is killed (SIGKILL) three times.
    let posting = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for i in 0..1500 {
                let body = format!("kept {i:05}").into_bytes();
                let (address, path) = e2e::http::split_url(&endpoint);
                let answer = e2e::http::request(
                    address,
                    "POST",
                    &path,
                    &[("TTL", "3600"), ("Content-Encoding", "aes128gcm")],
                    &body,
                    Duration::from_secs(10),
                )
                .await;
                let status = answer.map(|a| a.status).unwrap_or(0);
                *statuses.entry(status).or_default() += 1;
                if status == 201 {
                    accepted.push(body);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (accepted, statuses)
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        pushgate.crash_and_restart().await;
    }
    let (accepted, statuses) = posting.await.unwrap();
    let received = come_online_and_collect(&server, &accepted, Duration::from_secs(30)).await;
    let lost = accepted
        .iter()
        .filter(|body| !received.contains(*body))
        .count();
    notice(&format!(
        "kill -9 three times under load: {} accepted, {lost} lost; statuses {statuses:?} (0: the connection was cut by the kill)",
        accepted.len()
    ));
    assert!(accepted.len() > 500, "{statuses:?}");
    assert_eq!(lost, 0, "accepted messages lost across kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_for_10_s_refuses_and_never_loses_an_accepted_message() {
    use sqlx::Connection as _;
    let test = "a_database_locked_for_10_s_refuses_and_never_loses_an_accepted_message";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let pushgate = Pushgate::start(PushgateOptions::new(server.component_port())).await;
    let endpoint = offline_endpoint(&server, "locked-account").await;

    // Another process takes the database's write lock and holds it for 10 s.
    let url = format!("sqlite://{}", pushgate.database_path().display());
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let locked_at = Instant::now();
    let mut posts = Vec::new();
    for i in 0..40 {
        let endpoint = endpoint.clone();
        posts.push(tokio::spawn(async move {
            let body = format!("during the lock {i:03}").into_bytes();
            (body.clone(), post_push(&endpoint, &body, 3600).await.status)
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep_until((locked_at + Duration::from_secs(10)).into()).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);

    let mut accepted = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for post in posts {
        let (body, status) = post.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        assert!(matches!(status, 201 | 503), "{status}");
        if status == 201 {
            accepted.push(body);
        }
    }
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    // After the lock, storing works again.
    let after = b"after the lock".to_vec();
    assert_eq!(post_push(&endpoint, &after, 3600).await.status, 201);
    accepted.push(after);
    let received = come_online_and_collect(&server, &accepted, Duration::from_secs(20)).await;
    let lost = accepted
        .iter()
        .filter(|body| !received.contains(*body))
        .count();
    notice(&format!(
        "database locked for 10 s: statuses {statuses:?}, {} accepted in all, {lost} lost",
        accepted.len()
    ));
    assert_eq!(lost, 0);
}
