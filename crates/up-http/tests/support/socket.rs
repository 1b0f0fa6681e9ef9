//! A server on a loopback port with a real provider's push routes, and raw HTTP/1.1 clients
//! talking to it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use pushgate_up_http::{RateLimits, Routes, ServerConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Fixture, endpoint_config, generous};

/// A running server.
pub struct Server {
    pub fixture: Fixture,
    /// A registered endpoint token.
    pub token: String,
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// The push routes (rates no test reaches), and `extra` routes, under `config`.
    pub async fn start_with(config: ServerConfig, extra: Router) -> Self {
        let fixture = Fixture::new();
        let token = fixture.register();
        let routes: Routes = pushgate_up_http::push_routes(
            fixture.provider.clone(),
            endpoint_config(RateLimits {
                per_endpoint: generous(),
                per_client: generous(),
            }),
        )
        .expect("valid configuration")
        .merge(extra);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, routes, config, shutdown.clone()));
        Self {
            fixture,
            token,
            address,
            shutdown,
            task,
        }
    }

    /// The push routes under `config`.
    pub async fn start(config: ServerConfig) -> Self {
        Self::start_with(config, Router::new()).await
    }

    /// A POST of `body` to the registered endpoint, kept alive.
    pub fn post(&self, body: &str) -> Vec<u8> {
        format!(
            "POST /push/{} HTTP/1.1\r\nHost: up.example\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        )
        .into_bytes()
    }

    /// A new connection from 127.0.0.1.
    pub async fn connect(&self) -> Client {
        Client::new_to(self.address).await
    }

    /// A new connection from the loopback address `local` (any of 127.0.0.0/8).
    pub async fn connect_from(&self, local: &str) -> Client {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{local}:0").parse().expect("address"))
            .expect("bind");
        Client::new(socket.connect(self.address).await.expect("connect"))
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the server stops")
            .expect("server task");
    }
}

/// `GET /push/abc`, kept alive: answered 200 without touching the provider.
pub const GET: &[u8] = b"GET /push/abc HTTP/1.1\r\nHost: up.example\r\n\r\n";

/// One response as read from the socket.
#[derive(Debug)]
pub struct Answer {
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    pub fn assert_status(&self, status: &str) {
        assert!(
            self.status_line()
                .starts_with(&format!("HTTP/1.1 {status}")),
            "{}",
            self.head
        );
    }
}

/// A raw HTTP/1.1 client connection.
pub struct Client {
    pub stream: TcpStream,
    read: Vec<u8>,
}

impl Client {
    fn new(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            read: Vec::new(),
        }
    }

    /// A new connection to `address` from 127.0.0.1.
    pub async fn new_to(address: SocketAddr) -> Self {
        Self::new(TcpStream::connect(address).await.expect("connect"))
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads more bytes within `wait`; `None` when nothing came in that time, `Some(false)`
    /// at EOF (or a reset).
    async fn read_more_within(&mut self, wait: Duration) -> Option<bool> {
        let mut buffer = [0_u8; 4096];
        match tokio::time::timeout(wait, self.stream.read(&mut buffer)).await {
            Err(_) => None,
            Ok(Ok(read)) => {
                self.read.extend_from_slice(&buffer[..read]);
                Some(read > 0)
            }
            Ok(Err(_)) => Some(false),
        }
    }

    async fn read_more(&mut self) -> bool {
        self.read_more_within(Duration::from_secs(5))
            .await
            .expect("the server answers in time")
    }

    /// The next response: its head, and a body of its `Content-Length`.
    pub async fn answer(&mut self) -> Answer {
        let head_end = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.read_more().await,
                "EOF before a response head: {}",
                self.read.escape_ascii()
            );
        };
        let head = String::from_utf8_lossy(&self.read[..head_end]).into_owned();
        let mut answer = Answer {
            head,
            body: Vec::new(),
        };
        let length: usize = answer
            .header("content-length")
            .expect("responses have a Content-Length")
            .parse()
            .expect("a length");
        while self.read.len() < head_end + length {
            assert!(self.read_more().await, "EOF within a response body");
        }
        answer.body = self.read[head_end..head_end + length].to_vec();
        self.read.drain(..head_end + length);
        answer
    }

    /// Sends `request` and reads its answer.
    pub async fn exchange(&mut self, request: &[u8]) -> Answer {
        self.send(request).await;
        self.answer().await
    }

    /// Asserts the server closes the connection within `wait` with nothing more sent.
    pub async fn assert_closed_within(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_more_within(left).await {
                None => panic!("the connection is still open after {wait:?}"),
                Some(true) => {}
                Some(false) => break,
            }
        }
        assert!(
            self.read.is_empty(),
            "nothing after the last answer: {}",
            self.read.escape_ascii()
        );
    }

    /// Asserts nothing arrives and the connection stays open for `wait`.
    pub async fn assert_quiet_for(&mut self, wait: Duration) {
        match self.read_more_within(wait).await {
            None => {}
            Some(true) => panic!("unexpected bytes: {}", self.read.escape_ascii()),
            Some(false) => panic!("the connection was closed"),
        }
    }
}
