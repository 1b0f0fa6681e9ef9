//! 10,000 idle keep-alive connections fill the listener to its limit, and a new push POST is
//! still answered at once: the connection idle the longest makes room for it.
//!
//! The idle connections are opened by a child process (this test binary again, running
//! [`idle_fleet`]), so that each process holds about 10,000 file descriptors rather than one
//! holding 20,000, which is more than many systems' hard limit allows.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushgate_up_http::{ServerConfig, raise_open_files_limit};
use support::socket::{Client, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// How many idle connections the fleet opens; also the listener's `max_connections`.
const FLEET: usize = 10_000;

/// The fleet connects from this many loopback addresses (127.1.0.1 on), fewer connections each
/// than the default per-address cap.
const FLEET_ADDRESSES: usize = 64;

/// Set in the child's environment: the address the fleet connects to.
const FLEET_TARGET: &str = "PUSHGATE_UP_HTTP_TEST_FLEET_TARGET";

/// Everything must be over well within this: the test must not hold up CI.
const WHOLE_TEST: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_post_is_answered_at_once_beside_ten_thousand_idle_connections() {
    let started = Instant::now();
    let limit = raise_open_files_limit().expect("raising the open files limit");
    let needed = u64::try_from(FLEET).expect("fits") + 100;
    assert!(
        limit.allows(needed),
        "this test needs {needed} open files per process; the limit is {limit:?}"
    );
    let server = Server::start(ServerConfig {
        max_connections: FLEET,
        // No connection may time out while the fleet is assembled.
        header_read_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;

    let mut fleet = Fleet::start(server.address);
    let ready = tokio::time::timeout(WHOLE_TEST / 2, fleet.line_saying("fleet ready"))
        .await
        .expect("the fleet is assembled in time");
    println!("{ready}");

    // The listener is full: every one of its slots holds an idle connection.
    let mut latencies = Vec::new();
    for body in ["first", "second"] {
        let sent = Instant::now();
        let mut client = Client::new_to(server.address).await;
        let answer =
            tokio::time::timeout(Duration::from_secs(5), client.exchange(&server.post(body)))
                .await
                .expect("answered");
        let latency = sent.elapsed();
        answer.assert_status("201");
        latencies.push(latency);
    }
    println!("new POST beside {FLEET} idle connections at the limit: answered in {latencies:?}");
    for latency in &latencies {
        assert!(*latency < Duration::from_millis(500), "{latencies:?}");
    }

    // Room was made by closing the fleet's oldest connections, not by refusing anyone.
    fleet.send("report");
    let report = tokio::time::timeout(Duration::from_secs(5), fleet.line_saying("closed"))
        .await
        .expect("the fleet reports");
    println!("fleet connections closed to make room: {report}");
    let closed: usize = report
        .split_whitespace()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .expect("a count");
    assert!((1..=2).contains(&closed), "{report}");
    assert!(
        report.contains("oldest closed: true"),
        "the oldest connections were the ones closed: {report}"
    );

    fleet.finish();
    server.stop().await;
    assert!(started.elapsed() < WHOLE_TEST, "{:?}", started.elapsed());
}

/// The child process holding the idle connections.
struct Fleet {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Fleet {
    fn start(target: SocketAddr) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["idle_fleet", "--exact", "--nocapture", "--test-threads=1"])
            .env(FLEET_TARGET, target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the fleet starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The next line that says `what`, from `what` on (the test harness may have written
    /// before it on the same line).
    async fn line_saying(&mut self, what: &str) -> String {
        loop {
            let line = self.lines.recv().await.expect("the fleet ended early");
            if let Some(at) = line.find(what) {
                return line[at..].to_owned();
            }
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write to the fleet");
        stdin.flush().expect("flush");
    }

    /// Tells the fleet to close its connections and waits for it to exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "the fleet failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the fleet does not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Only after a failure: do not leave the child behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child's part: opens [`FLEET`] connections to the address in [`FLEET_TARGET`], each
/// served one request and then idle; says so on stdout; on "report" from stdin counts how
/// many the server closed; on EOF closes them all. Does nothing when run as a test of its own.
#[test]
fn idle_fleet() {
    let Ok(target) = std::env::var(FLEET_TARGET) else {
        return;
    };
    let target: SocketAddr = target.parse().expect("a socket address");
    raise_open_files_limit().expect("raising the open files limit");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let connections = runtime.block_on(open_fleet(target));
    println!(
        "fleet ready: {} idle keep-alive connections opened in {:?}",
        connections.len(),
        started.elapsed()
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line == "report" {
            let closed = runtime.block_on(closed_ones(&connections));
            let oldest = closed
                .iter()
                .enumerate()
                .all(|(rank, index)| rank == *index);
            println!("closed {} (oldest closed: {oldest})", closed.len());
        }
    }
}

/// Opens the fleet, oldest first in the order returned: each connection is served before the
/// next starts from the same address, and the addresses take turns.
async fn open_fleet(target: SocketAddr) -> Vec<TcpStream> {
    // Many at a time but in waves of ascending index, so that the server sees them go idle
    // about in index order; exactness is only needed for the first few, which open alone.
    let at_once = Arc::new(Semaphore::new(128));
    let mut connections = Vec::with_capacity(FLEET);
    for index in 0..8 {
        connections.push(open_idle(target, index).await);
    }
    let mut opening = Vec::with_capacity(FLEET);
    for index in 8..FLEET {
        let permit = Arc::clone(&at_once).acquire_owned().await.expect("open");
        opening.push(tokio::spawn(async move {
            let connection = open_idle(target, index).await;
            drop(permit);
            connection
        }));
    }
    for opened in opening {
        connections.push(opened.await.expect("task"));
    }
    connections
}

async fn open_idle(target: SocketAddr, index: usize) -> TcpStream {
    let last_octet = u8::try_from(index % FLEET_ADDRESSES + 1).expect("fits");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 1, 0, last_octet], 0)))
        .expect("bind");
    let mut stream = socket.connect(target).await.expect("connect");
    stream
        .write_all(b"GET /push/abc HTTP/1.1\r\nHost: up.example\r\n\r\n")
        .await
        .expect("write");
    let expected = br#"{"unifiedpush":{"version":1}}"#;
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !answer.ends_with(expected) {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "closed before the answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        answer.escape_ascii()
    );
    stream
}

/// The indices of the connections the server has closed, after giving the closes a moment
/// to arrive.
async fn closed_ones(connections: &[TcpStream]) -> Vec<usize> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buffer = [0_u8; 64];
    connections
        .iter()
        .enumerate()
        .filter(|(_, stream)| match stream.try_read(&mut buffer) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
        })
        .map(|(index, _)| index)
        .collect()
}
