//! Request smuggling shapes over a real socket: requests whose framing a proxy in front could
//! read differently get 400 and a closed connection; well-framed requests, kept alive,
//! pipelined or split anywhere, are served as before.

mod support;

use std::time::Duration;

use pushgate_up_http::{RateLimits, ServerConfig, serve};
use support::{Fixture, endpoint_config, generous};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    fixture: Fixture,
    token: String,
    address: std::net::SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl Running {
    /// A real provider's push routes, with rates no test reaches, on a loopback port.
    async fn start() -> Self {
        let fixture = Fixture::new();
        let token = fixture.register();
        let routes = pushgate_up_http::push_routes(
            fixture.provider.clone(),
            endpoint_config(RateLimits {
                per_endpoint: generous(),
                per_client: generous(),
            }),
        )
        .expect("valid configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            routes,
            ServerConfig::default(),
            shutdown.clone(),
        ));
        Self {
            fixture,
            token,
            address,
            shutdown,
            server,
        }
    }

    async fn connect(&self) -> Connection {
        let stream = TcpStream::connect(self.address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            stream,
            read: Vec::new(),
        }
    }

    /// A POST of `body` to the endpoint with a `Content-Length`, kept alive.
    fn post(&self, body: &str) -> Vec<u8> {
        format!(
            "POST /push/{} HTTP/1.1\r\nHost: up.example\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        )
        .into_bytes()
    }

    /// A POST of `body` to the endpoint in two chunks, kept alive.
    fn post_chunked(&self, body: &str) -> Vec<u8> {
        let (first, second) = body.split_at(body.len() / 2);
        format!(
            "POST /push/{}?x=1 HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{first}\r\n{:x};ext=1\r\n{second}\r\n0\r\n\r\n",
            self.token,
            first.len(),
            second.len()
        )
        .into_bytes()
    }

    /// A POST to the endpoint with `headers` and the raw `body` after them.
    fn post_with(&self, headers: &str, body: &str) -> Vec<u8> {
        format!(
            "POST /push/{} HTTP/1.1\r\nHost: up.example\r\n{headers}\r\n{body}",
            self.token
        )
        .into_bytes()
    }

    /// The bodies the client received, in order.
    fn delivered(&self) -> Vec<String> {
        self.fixture
            .client
            .received()
            .into_iter()
            .map(|received| String::from_utf8_lossy(&received.3).into_owned())
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.expect("server task");
    }
}

const GET: &[u8] = b"GET /push/abc HTTP/1.1\r\nHost: up.example\r\n\r\n";

/// One response as read from the socket.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    fn assert_status(&self, status: &str) {
        assert!(
            self.status_line()
                .starts_with(&format!("HTTP/1.1 {status}")),
            "{}",
            self.head
        );
    }
}

struct Connection {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads more bytes; false at EOF.
    async fn read_more(&mut self) -> bool {
        let mut buffer = [0_u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buffer))
            .await
            .expect("the server answers in time")
            .expect("read");
        self.read.extend_from_slice(&buffer[..read]);
        read > 0
    }

    /// The next response: its head, and a body of its `Content-Length`.
    async fn answer(&mut self) -> Answer {
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

    /// Asserts the server closes the connection with nothing more sent.
    async fn assert_closed(&mut self) {
        while self.read_more().await {}
        assert!(
            self.read.is_empty(),
            "nothing after the answer: {}",
            self.read.escape_ascii()
        );
    }

    /// Asserts the next answer is the refusal, and that the connection is closed after it.
    async fn assert_refused(&mut self) {
        let answer = self.answer().await;
        answer.assert_status("400 Bad Request");
        assert_eq!(
            answer.header("connection"),
            Some("close"),
            "{}",
            answer.head
        );
        assert_eq!(answer.body, br#"{"error":"malformed request framing"}"#);
        self.assert_closed().await;
    }
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_in_either_order() {
    let running = Running::start().await;
    // Each body hides a second request behind the framing the other header would give.
    for headers in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let mut connection = running.connect().await;
        let mut request = running.post_with(headers, "0\r\n\r\n");
        request.extend_from_slice(&running.post("smuggled"));
        connection.send(&request).await;
        connection.assert_refused().await;
    }
    assert!(running.delivered().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_refused() {
    let running = Running::start().await;
    let token = &running.token;
    for request in [
        format!("POST /push/{token} HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello"),
        "GET /push/abc HTTP/1.1\nHost: a\n\n".to_owned(),
        // One bare LF, in one header line only.
        format!("POST /push/{token} HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nhello"),
        format!("POST /push/{token} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\n\r\nhello"),
    ] {
        let mut connection = running.connect().await;
        connection.send(request.as_bytes()).await;
        connection.assert_refused().await;
    }
    assert!(running.delivered().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn transfer_codings_other_than_one_chunked_are_refused() {
    let running = Running::start().await;
    // `chunked` twice is refused too: RFC 9112 §7 forbids applying it more than once.
    for headers in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let mut connection = running.connect().await;
        connection
            .send(&running.post_with(headers, "5\r\nhello\r\n0\r\n\r\n"))
            .await;
        connection.assert_refused().await;
    }
    assert!(running.delivered().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_faulty_request_after_a_good_one_on_the_same_connection_is_refused() {
    let running = Running::start().await;
    let mut connection = running.connect().await;
    connection.send(&running.post("first")).await;
    connection.answer().await.assert_status("201 Created");
    connection
        .send(&running.post_with(
            "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ))
        .await;
    connection.assert_refused().await;
    assert_eq!(running.delivered(), ["first"]);
    running.stop().await;
}

#[tokio::test]
async fn well_framed_requests_keep_their_connection_alive() {
    let running = Running::start().await;
    for first in [running.post("by length"), running.post_chunked("in chunks")] {
        let mut connection = running.connect().await;
        connection.send(&first).await;
        let answer = connection.answer().await;
        answer.assert_status("201 Created");
        assert_eq!(answer.header("connection"), None, "{}", answer.head);
        connection.send(GET).await;
        connection.answer().await.assert_status("200 OK");
        connection.send(&running.post("again")).await;
        connection.answer().await.assert_status("201 Created");
    }
    assert_eq!(
        running.delivered(),
        ["by length", "again", "in chunks", "again"]
    );
    running.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let running = Running::start().await;
    let mut connection = running.connect().await;
    let pipelined = [
        running.post("one"),
        GET.to_vec(),
        b"\r\n".to_vec(),
        running.post_chunked("two!"),
        running.post("three"),
        GET.to_vec(),
    ]
    .concat();
    connection.send(&pipelined).await;
    for status in ["201", "200", "201", "201", "200"] {
        connection.answer().await.assert_status(status);
    }
    // A faulty request at the end of a pipeline is refused after the good ones are answered.
    connection
        .send(
            &[
                running.post("four"),
                b"GET / HTTP/1.1\nHost: a\n\n".to_vec(),
            ]
            .concat(),
        )
        .await;
    connection.answer().await.assert_status("201");
    connection.assert_refused().await;
    assert_eq!(running.delivered(), ["one", "two!", "three", "four"]);
    running.stop().await;
}

#[tokio::test]
async fn a_request_split_anywhere_into_two_writes_is_accepted() {
    let running = Running::start().await;
    let mut connection = running.connect().await;
    let mut sent = 0;
    for request in [running.post("split"), running.post_chunked("split")] {
        for at in 1..request.len() {
            let (first, second) = request.split_at(at);
            connection.send(first).await;
            // Long enough for the server to read the first part on its own.
            tokio::time::sleep(Duration::from_millis(1)).await;
            connection.send(second).await;
            connection.answer().await.assert_status("201 Created");
            sent += 1;
        }
    }
    assert_eq!(running.delivered().len(), sent);
    running.stop().await;
}

#[tokio::test]
async fn a_bare_lf_in_the_chunked_framing_closes_the_connection() {
    let running = Running::start().await;
    // Where the whole request arrives before it is handed over, it is refused outright.
    let mut connection = running.connect().await;
    let faulty_trailer = "5\r\nhello\r\n0\r\nA: b\nC: d\r\n\r\n";
    connection
        .send(
            &[
                running.post_with("Transfer-Encoding: chunked\r\n", faulty_trailer),
                running.post("smuggled"),
            ]
            .concat(),
        )
        .await;
    connection.assert_refused().await;
    // Where the fault arrives while the request is being answered, the answer closes the
    // connection and nothing after it is served.
    let mut connection = running.connect().await;
    connection
        .send(&running.post_with("Transfer-Encoding: chunked\r\n", ""))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    connection
        .send(&[faulty_trailer.as_bytes(), &running.post("smuggled")].concat())
        .await;
    let answer = connection.answer().await;
    assert_eq!(
        answer.header("connection"),
        Some("close"),
        "{}",
        answer.head
    );
    connection.assert_closed().await;
    assert!(!running.delivered().contains(&"smuggled".to_owned()));
    running.stop().await;
}
