//! The shared transport under the FCM sender: a relay that speaks only HTTP/1.1 is spoken to
//! in HTTP/1.1 without a setting, and `proxy` sends everything through an HTTP proxy.

use std::sync::{Arc, Mutex};

use pushgate_core::WakeOutcome;
use pushgate_fcm::FcmConfig;
use pushgate_testkit::fake_fcm::FakeFcm;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{config, sender_with, wake};

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// A TCP relay in front of the fake that speaks only HTTP/1.1: it answers the HTTP/2
/// preface with `400` and closes, as nginx does, and relays everything else to the fake
/// (whose own port would take h2c too).
struct Http1OnlyRelay {
    port: u16,
    prefaces: Arc<Mutex<u32>>,
    task: JoinHandle<()>,
}

impl Http1OnlyRelay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let prefaces = Arc::new(Mutex::new(0));
        let task = tokio::spawn({
            let prefaces = Arc::clone(&prefaces);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let (target, prefaces) = (target.clone(), Arc::clone(&prefaces));
                    tokio::spawn(async move {
                        let mut first = [0u8; PREFACE_START.len()];
                        if inbound.read_exact(&mut first).await.is_err() {
                            return;
                        }
                        if first == PREFACE_START {
                            *prefaces.lock().expect("prefaces") += 1;
                            let _ = inbound
                                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                        let mut outbound = TcpStream::connect(target).await.expect("fake");
                        if outbound.write_all(&first).await.is_ok() {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Self {
            port,
            prefaces,
            task,
        }
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn prefaces(&self) -> u32 {
        *self.prefaces.lock().expect("prefaces")
    }
}

impl Drop for Http1OnlyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_wake_up_reaches_a_relay_that_speaks_only_http1() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let relay = Http1OnlyRelay::start(fake.api_url().replace("http://", "")).await;
    // The default settings: h2c is tried first, nothing says the relay is HTTP/1.1.
    let config = FcmConfig {
        api_url: relay.api_url(),
        ..config(&fake)
    };
    assert!(config.http2_prior_knowledge);
    let sender = sender_with(&fake, &config);
    assert_eq!(wake(&sender, "first").await, WakeOutcome::Accepted);
    assert_eq!(wake(&sender, "second").await, WakeOutcome::Accepted);
    assert_eq!(fake.send_requests(), 2);
    assert_eq!(fake.sends_over_http2(), 0);
    assert_eq!(fake.sends_to("first"), 1);
    assert_eq!(relay.prefaces(), 1, "HTTP/2 is tried once, then remembered");
}

/// A proxy: CONNECT tunnels (the sends) and absolute-form requests (the token endpoint's
/// client asks an `http://` token URL that way); records each request line.
struct Proxy {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let lines = Arc::clone(&lines);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    tokio::spawn(proxy_one(inbound, Arc::clone(&lines)));
                }
            }
        });
        Self { port, lines, task }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_one(mut inbound: TcpStream, lines: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing after the head is read here.
    while !head.ends_with(b"\r\n\r\n") {
        match inbound.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    lines.lock().expect("lines").push(line.clone());
    let mut words = line.split(' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let authority = if method == "CONNECT" {
        target.to_owned()
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            return;
        };
        rest.split('/').next().unwrap_or_default().to_owned()
    };
    let Ok(mut outbound) = TcpStream::connect(authority).await else {
        return;
    };
    let ready = if method == "CONNECT" {
        inbound
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
    } else {
        outbound.write_all(&head).await
    };
    if ready.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

#[tokio::test]
async fn with_a_proxy_the_sends_and_the_token_go_through_it() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let proxy = Proxy::start().await;
    let config = FcmConfig {
        proxy: Some(format!("http://127.0.0.1:{}", proxy.port)),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    assert_eq!(wake(&sender, "proxied").await, WakeOutcome::Accepted);
    assert_eq!(wake(&sender, "again").await, WakeOutcome::Accepted);
    assert_eq!(fake.sends_over_http2(), 2, "h2c through the tunnel");
    let fake_authority = fake.api_url().replace("http://", "");
    let lines = proxy.lines();
    assert!(
        lines.contains(&format!("CONNECT {fake_authority} HTTP/1.1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("POST {}", fake.token_uri()))),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("CONNECT"))
            .count(),
        1,
        "one tunnel carries every send"
    );
}
