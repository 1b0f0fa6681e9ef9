//! The connection limits over a real loopback socket: at `max_connections` the connection idle
//! the longest makes room for a new one, a connection in the middle of a request never does,
//! and one address cannot hold more than `max_connections_per_address`.

mod support;

use std::time::{Duration, Instant};

use pushgate_up_http::ServerConfig;
use support::socket::{Client, GET, Server};

/// A small listener whose head and body timeouts no test reaches.
fn small(max_connections: usize) -> ServerConfig {
    ServerConfig {
        max_connections,
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

/// A connection that was served one request and now idles.
async fn idle(server: &Server) -> Client {
    let mut client = server.connect().await;
    client.exchange(GET).await.assert_status("200");
    client
}

/// A connection that sent a push head and half of its body.
async fn mid_body(server: &Server) -> (Client, Vec<u8>) {
    let request = server.post("0123456789");
    let (sent, rest) = request.split_at(request.len() - 5);
    let mut client = server.connect().await;
    client.send(sent).await;
    (client, rest.to_vec())
}

/// A connection that sent part of a request head.
async fn mid_head(server: &Server) -> (Client, Vec<u8>) {
    let (sent, rest) = GET.split_at(20);
    let mut client = server.connect().await;
    client.send(sent).await;
    (client, rest.to_vec())
}

#[tokio::test]
async fn at_the_limit_the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
    let server = Server::start(small(8)).await;
    let (mut in_body, body_rest) = mid_body(&server).await;
    let (mut in_head, head_rest) = mid_head(&server).await;
    let mut idle_ones = Vec::new();
    for _ in 0..6 {
        idle_ones.push(idle(&server).await);
    }
    // All 8 slots are taken. Each new connection is served at once, and the one idle the
    // longest is closed for it.
    let mut newcomers = Vec::new();
    for evicted in idle_ones.iter_mut().take(3) {
        let started = Instant::now();
        let mut newcomer = server.connect().await;
        newcomer
            .exchange(&server.post("new"))
            .await
            .assert_status("201");
        assert!(started.elapsed() < Duration::from_secs(1), "served at once");
        evicted.assert_closed_within(Duration::from_secs(2)).await;
        newcomers.push(newcomer);
    }
    for still_open in &mut idle_ones[3..] {
        still_open.exchange(GET).await.assert_status("200");
    }
    // The connections mid-request were never closed; they finish their requests.
    in_body.send(&body_rest).await;
    in_body.answer().await.assert_status("201");
    in_head.send(&head_rest).await;
    in_head.answer().await.assert_status("200");
    server.stop().await;
}

#[tokio::test]
async fn with_no_idle_connection_a_new_one_waits_until_one_is() {
    let server = Server::start(small(2)).await;
    let (mut in_body, body_rest) = mid_body(&server).await;
    let (mut in_head, _head_rest) = mid_head(&server).await;
    let address = server.address;
    let post = server.post("waiting");
    let newcomer = tokio::spawn(async move {
        let mut newcomer = Client::new_to(address).await;
        newcomer.exchange(&post).await
    });
    // Both connections are mid-request: the newcomer waits in the backlog.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !newcomer.is_finished(),
        "no busy connection is closed for it"
    );
    in_head.assert_quiet_for(Duration::from_millis(10)).await;
    // One finishes its request and becomes idle: it makes room.
    in_body.send(&body_rest).await;
    in_body.answer().await.assert_status("201");
    let answer = tokio::time::timeout(Duration::from_secs(2), newcomer)
        .await
        .expect("the newcomer is served once a connection is idle")
        .expect("task");
    answer.assert_status("201");
    in_body.assert_closed_within(Duration::from_secs(2)).await;
    // Its request in progress would hold up the shutdown for the grace period.
    drop(in_head);
    server.stop().await;
}

#[tokio::test]
async fn one_address_over_its_cap_gets_503_and_others_are_served() {
    let server = Server::start(ServerConfig {
        max_connections_per_address: 3,
        ..small(100)
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(idle(&server).await);
    }
    let mut over = server.connect().await;
    let refused = over.exchange(&server.post("over")).await;
    refused.assert_status("503 Service Unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"), "{}", refused.head);
    assert_eq!(
        refused.header("connection"),
        Some("close"),
        "{}",
        refused.head
    );
    assert_eq!(
        refused.body,
        br#"{"error":"too many connections from this address"}"#
    );
    over.assert_closed_within(Duration::from_secs(2)).await;
    // Another address is another client.
    let mut other = server.connect_from("127.0.0.2").await;
    other
        .exchange(&server.post("other"))
        .await
        .assert_status("201");
    // The held connections are still served, and once one closes there is room again.
    for client in &mut held {
        client.exchange(GET).await.assert_status("200");
    }
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut again = server.connect().await;
        let answer = again.exchange(&server.post("again")).await;
        if answer.status_line().starts_with("HTTP/1.1 201") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after a close: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered: Vec<Vec<u8>> = server
        .fixture
        .client
        .received()
        .into_iter()
        .map(|received| received.3)
        .collect();
    assert_eq!(delivered, vec![b"other".to_vec(), b"again".to_vec()]);
    server.stop().await;
}
