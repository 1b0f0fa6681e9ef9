//! The server on a real loopback socket: raw HTTP/1.1 bytes in, bytes out, and shutdown.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pushgate_up_http::{RateLimits, Routes, ServerConfig, serve};
use support::{Fixture, burst_then_hourly, endpoint_config, generous};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    address: std::net::SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

async fn start(router: impl Into<Routes>, config: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, router, config, shutdown.clone()));
    Running {
        address,
        shutdown,
        server,
    }
}

/// The push routes of a real provider with the default limits.
fn push_routes() -> Routes {
    routes_of(&Fixture::new(), RateLimits::default())
}

fn routes_of(fixture: &Fixture, rate_limits: RateLimits) -> Routes {
    pushgate_up_http::push_routes(fixture.provider.clone(), endpoint_config(rate_limits))
        .expect("valid configuration")
}

async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let stream = TcpStream::connect(address).await.expect("connect");
    exchange_on(stream, request).await
}

/// Sends `request` from the loopback address `local` (any of 127.0.0.0/8).
async fn exchange_from(local: &str, address: SocketAddr, request: &[u8]) -> String {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("address"))
        .expect("bind");
    let stream = socket.connect(address).await.expect("connect");
    exchange_on(stream, request).await
}

async fn exchange_on(mut stream: TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn serves_get_push_over_tcp() {
    let running = start(push_routes(), ServerConfig::default()).await;
    let answer = exchange(
        running.address,
        b"GET /push/abc HTTP/1.1\r\nHost: up.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#"{"unifiedpush":{"version":1}}"#),
        "{answer}"
    );
    running.shutdown.cancel();
    running.server.await.expect("server task");
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_keeps_serving() {
    let running = start(push_routes(), ServerConfig::default()).await;
    for garbage in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET /push/abc HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /push/abc HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET \xff\xfe HTTP/1.1\r\n\r\n",
    ] {
        let answer = exchange(running.address, garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} -> {answer}"
        );
    }
    let answer = exchange(
        running.address,
        b"GET /push/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.shutdown.cancel();
    running.server.await.expect("server task");
}

#[tokio::test]
async fn an_oversized_declared_body_gets_413_without_being_sent() {
    let running = start(push_routes(), ServerConfig::default()).await;
    // Only the head is sent: the answer must not wait for the 1 MB body.
    let answer = exchange(
        running.address,
        b"POST /push/abc HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    running.shutdown.cancel();
    running.server.await.expect("server task");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let running = start(push_routes(), config).await;
    let mut stream = TcpStream::connect(running.address).await.expect("connect");
    stream
        .write_all(b"GET /push/abc HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("read");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    running.shutdown.cancel();
    running.server.await.expect("server task");
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_stops_accepting() {
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let started_in_handler = started.clone();
    let router = Router::new().route(
        "/slow",
        get(move || {
            let started = started_in_handler.clone();
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        }),
    );
    let running = start(router, ServerConfig::default()).await;
    let address = running.address;
    let client =
        tokio::spawn(
            async move { exchange(address, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await },
        );
    started.notified().await;
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running.server)
        .await
        .expect("serve returns after the drain")
        .expect("server task");
    let answer = client.await.expect("client");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("finished"), "{answer}");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_does_not_hold_up_shutdown() {
    let running = start(push_routes(), ServerConfig::default()).await;
    let mut stream = TcpStream::connect(running.address).await.expect("connect");
    stream
        .write_all(b"GET /push/abc HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 512];
    let read = stream.read(&mut buffer).await.expect("read");
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), running.server)
        .await
        .expect("serve returns without waiting for the idle client")
        .expect("server task");
}

fn post_request(token: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /push/{token} HTTP/1.1\r\nHost: up.example\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn the_per_client_rate_counts_each_peer_address() {
    let fixture = Fixture::new();
    let routes = routes_of(
        &fixture,
        RateLimits {
            per_endpoint: generous(),
            per_client: burst_then_hourly(2),
        },
    );
    let running = start(routes, ServerConfig::default()).await;
    let token = fixture.register();
    for body in ["one", "two"] {
        let answer = exchange(running.address, &post_request(&token, "TTL: 60\r\n", body)).await;
        assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
        assert!(answer.contains("\r\nttl: 60\r\n"), "{answer}");
        assert!(
            answer.contains("\r\nlocation: https://up.example/message/"),
            "{answer}"
        );
    }
    let refused = exchange(running.address, &post_request(&token, "", "three")).await;
    assert!(
        refused.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{refused}"
    );
    assert!(refused.contains("\r\nretry-after: "), "{refused}");
    // A header naming someone else changes nothing: no proxy is trusted.
    let spoofed = exchange(
        running.address,
        &post_request(&token, "X-Forwarded-For: 192.0.2.1\r\n", "four"),
    )
    .await;
    assert!(spoofed.starts_with("HTTP/1.1 429"), "{spoofed}");
    // Another peer address is another client.
    let other = exchange_from(
        "127.0.0.2",
        running.address,
        &post_request(&token, "", "five"),
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 201"), "{other}");
    let bodies: Vec<Vec<u8>> = fixture.client.received().into_iter().map(|r| r.3).collect();
    assert_eq!(
        bodies,
        vec![b"one".to_vec(), b"two".to_vec(), b"five".to_vec()]
    );
    running.shutdown.cancel();
    running.server.await.expect("server task");
}

#[tokio::test]
async fn chunked_bodies_are_read_up_to_the_cap() {
    let fixture = Fixture::new();
    let running = start(
        routes_of(&fixture, RateLimits::default()),
        ServerConfig::default(),
    )
    .await;
    let token = fixture.register();
    let head = format!(
        "POST /push/{token} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunked = |sizes: &[usize]| {
        let mut request = head.clone().into_bytes();
        for size in sizes {
            request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
            request.extend(std::iter::repeat_n(b'z', *size));
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        request
    };
    let fits = exchange(running.address, &chunked(&[4000, 96])).await;
    assert!(fits.starts_with("HTTP/1.1 201"), "{fits}");
    let over = exchange(running.address, &chunked(&[4000, 97])).await;
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");
    assert!(
        over.ends_with(r#"{"error":"request body too large"}"#),
        "{over}"
    );
    let received = fixture.client.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].3, vec![b'z'; 4096]);
    running.shutdown.cancel();
    running.server.await.expect("server task");
}
