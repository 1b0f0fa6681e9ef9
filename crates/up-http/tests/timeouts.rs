//! Timeouts over a real loopback socket: a client too slow with its request head or body gets
//! 408 Request Timeout and a closed connection; a handler too slow with its answer gets 503.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use pushgate_up_http::ServerConfig;
use support::socket::{GET, Server};

const SHORT: Duration = Duration::from_millis(300);

/// Every timeout long, except those a test shortens.
fn long() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

/// A push head declaring a 100-byte body, and the first 10 bytes of it.
fn ten_of_a_hundred(server: &Server) -> Vec<u8> {
    format!(
        "POST /push/{} HTTP/1.1\r\nHost: up.example\r\nContent-Length: 100\r\n\r\n0123456789",
        server.token
    )
    .into_bytes()
}

fn assert_request_timeout(answer: &support::socket::Answer) {
    answer.assert_status("408 Request Timeout");
    assert_eq!(
        answer.header("connection"),
        Some("close"),
        "{}",
        answer.head
    );
    assert_eq!(
        answer.body,
        br#"{"error":"the request did not arrive in time"}"#
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    let server = Server::start(ServerConfig {
        body_read_timeout: SHORT,
        ..long()
    })
    .await;
    let mut client = server.connect().await;
    let started = Instant::now();
    client.send(&ten_of_a_hundred(&server)).await;
    let answer = client.answer().await;
    let waited = started.elapsed();
    assert_request_timeout(&answer);
    assert!(waited >= SHORT, "{waited:?}");
    assert!(waited < SHORT + Duration::from_secs(1), "{waited:?}");
    client.assert_closed_within(Duration::from_secs(2)).await;
    assert!(server.fixture.client.received().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_body_still_trickling_in_at_the_request_deadline_gets_408() {
    let server = Server::start(ServerConfig {
        request_timeout: SHORT,
        ..long()
    })
    .await;
    let mut client = server.connect().await;
    client.send(&ten_of_a_hundred(&server)).await;
    // A byte now and then: the body read timeout never passes, the request deadline does.
    let answer = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.send(b"x").await;
        if let Ok(answer) = tokio::time::timeout(Duration::from_millis(10), client.answer()).await {
            break answer;
        }
    };
    assert_request_timeout(&answer);
    client.assert_closed_within(Duration::from_secs(2)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_handler_past_the_request_timeout_still_gets_503() {
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let server = Server::start_with(
        ServerConfig {
            request_timeout: SHORT,
            ..long()
        },
        slow,
    )
    .await;
    let mut client = server.connect().await;
    let answer = client
        .exchange(b"GET /slow HTTP/1.1\r\nHost: up.example\r\n\r\n")
        .await;
    answer.assert_status("503 Service Unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    // A push whose whole body arrived but whose delivery hangs is the server's fault too.
    server.fixture.client.go_silent();
    let answer = client.exchange(&server.post("complete")).await;
    answer.assert_status("503 Service Unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    // The connection stays usable.
    client.exchange(GET).await.assert_status("200");
    server.stop().await;
}

#[tokio::test]
async fn a_head_that_stops_arriving_gets_408_and_an_idle_connection_is_closed() {
    let server = Server::start(ServerConfig {
        header_read_timeout: SHORT,
        ..long()
    })
    .await;
    let mut partial = server.connect().await;
    let started = Instant::now();
    partial.send(&GET[..20]).await;
    let answer = partial.answer().await;
    let waited = started.elapsed();
    assert_request_timeout(&answer);
    assert!(answer.header("date").is_some(), "{}", answer.head);
    assert!(
        waited >= SHORT && waited < SHORT + Duration::from_secs(1),
        "{waited:?}"
    );
    partial.assert_closed_within(Duration::from_secs(2)).await;

    // A kept-alive connection that sends nothing more is closed without a word, the head
    // timeout counted from its last answer.
    let mut kept = server.connect().await;
    kept.exchange(GET).await.assert_status("200");
    let answered = Instant::now();
    kept.assert_closed_within(Duration::from_secs(2)).await;
    assert!(answered.elapsed() >= SHORT - Duration::from_millis(50));

    // Requests that keep coming keep the connection: each answer starts a new wait.
    let mut busy = server.connect().await;
    for _ in 0..4 {
        tokio::time::sleep(SHORT / 2).await;
        busy.exchange(GET).await.assert_status("200");
    }
    server.stop().await;
}
