//! The shared HTTP/2 connection's life: opened once for many sends, opened anew after the
//! server closes it or says GOAWAY, and a connect that cannot succeed ends within the deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmConfig, KeepAlive, RetryPolicy};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use super::{config, is_transient, sender_with, wake};

fn no_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

/// A TCP relay in front of the fake's send endpoint that can cut every connection through it,
/// as a server restart does.
struct Relay {
    port: u16,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    freeze: Arc<Notify>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let freeze = Arc::new(Notify::new());
        let accept = tokio::spawn({
            let (links, freeze) = (Arc::clone(&links), Arc::clone(&freeze));
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let (target, freeze) = (target.clone(), Arc::clone(&freeze));
                    let link = tokio::spawn(async move {
                        let mut outbound = TcpStream::connect(target).await.expect("fake");
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            // Frozen: both sockets stay open, nothing goes through any more.
                            () = freeze.notified() => std::future::pending::<()>().await,
                        }
                    });
                    links.lock().expect("links").push(link);
                }
            }
        });
        Self {
            port,
            links,
            freeze,
            accept,
        }
    }

    /// Stops forwarding on every connection open now, keeping them open (a peer gone silent,
    /// as behind a NAT that forgot the connection); later connections are forwarded.
    fn freeze(&self) {
        self.freeze.notify_waiters();
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes every connection through the relay.
    fn cut(&self) {
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_is_opened_anew_by_one_send() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let relay = Relay::start(fake.api_url().replace("http://", "")).await;
    let config = FcmConfig {
        api_url: relay.api_url(),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config).with_retry_policy(no_retries());
    assert_eq!(wake(&sender, "before").await, WakeOutcome::Accepted);
    assert_eq!(fake.connections(), 2, "the token endpoint, then the sends");

    relay.cut();
    // Time for the connection's end to be noticed, as it is between two real wake-ups.
    sleep(Duration::from_millis(200)).await;
    fake.set_default_answer(Answer::success().after(Duration::from_millis(20)));
    let outcomes = futures::future::join_all((0..20).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("after-{n}")).await }
    }))
    .await;
    assert!(
        outcomes.iter().all(|o| *o == WakeOutcome::Accepted),
        "{outcomes:?}"
    );
    assert_eq!(fake.connections(), 3, "one new connection for the burst");
    assert_eq!(fake.sends_over_http2(), 21);
}

fn quick_keep_alive() -> KeepAlive {
    KeepAlive {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn answered_pings_keep_the_connection_through_idle_spells() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let sender = sender_with(&fake, &config(&fake))
        .with_retry_policy(no_retries())
        .with_keep_alive(quick_keep_alive());
    assert_eq!(wake(&sender, "before").await, WakeOutcome::Accepted);
    // Several PINGs go out and are answered meanwhile.
    sleep(Duration::from_millis(600)).await;
    assert_eq!(wake(&sender, "after").await, WakeOutcome::Accepted);
    assert_eq!(
        fake.connections(),
        2,
        "the token endpoint, then one for both sends"
    );
}

#[tokio::test]
async fn a_connection_whose_pings_go_unanswered_is_replaced() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let relay = Relay::start(fake.api_url().replace("http://", "")).await;
    let config = FcmConfig {
        api_url: relay.api_url(),
        request_deadline: Duration::from_secs(3),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config)
        .with_retry_policy(no_retries())
        .with_keep_alive(quick_keep_alive());
    assert_eq!(wake(&sender, "before").await, WakeOutcome::Accepted);
    assert_eq!(fake.connections(), 2, "the token endpoint, then the sends");

    relay.freeze();
    // One interval and one PING timeout, with room to spare.
    sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    // Without the PINGs this send would go out on the silent connection and wait out the
    // deadline (3 s) for nothing.
    assert_eq!(wake(&sender, "after").await, WakeOutcome::Accepted);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.connections(),
        3,
        "a new connection after the silent one"
    );
}

#[tokio::test]
async fn many_concurrent_sends_share_one_connection() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        max_concurrent: 1000,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config).with_retry_policy(no_retries());
    fake.set_default_answer(Answer::success().after(Duration::from_millis(100)));
    let outcomes = futures::future::join_all((0..500).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("t{n}")).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert!(fake.max_in_flight() > 100, "{}", fake.max_in_flight());
    assert_eq!(fake.sends_over_http2(), 500);
    assert_eq!(fake.connections(), 2, "the token endpoint, then the sends");
}

/// An HTTP/2 server that accepts every send and says GOAWAY (RFC 9113 §6.8) on each
/// connection as soon as the first request comes, then answers that request after 300 ms, so
/// the connection stays open, going away, meanwhile.
async fn start_goaway_server() -> (String, Arc<AtomicU64>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                let mut first = true;
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    let delay = if first {
                        connection.graceful_shutdown();
                        first = false;
                        Duration::from_millis(300)
                    } else {
                        Duration::ZERO
                    };
                    tokio::spawn(async move {
                        sleep(delay).await;
                        let response = http::Response::new(());
                        if let Ok(mut body) = respond.send_response(response, false) {
                            let _ = body.send_data(Bytes::from_static(b"{\"name\":\"x\"}"), true);
                        }
                    });
                }
            });
        }
    });
    (url, connections, task)
}

#[tokio::test]
async fn after_a_goaway_the_next_send_opens_a_new_connection() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let (url, connections, server) = start_goaway_server().await;
    let config = FcmConfig {
        api_url: url,
        ..config(&fake)
    };
    // No retries: each send must find a usable connection by itself.
    let sender = sender_with(&fake, &config).with_retry_policy(no_retries());
    let (first, second) = tokio::join!(wake(&sender, "first"), async {
        // By now the first connection has said GOAWAY and still carries the first send.
        sleep(Duration::from_millis(100)).await;
        wake(&sender, "second").await
    });
    assert_eq!(first, WakeOutcome::Accepted);
    assert_eq!(second, WakeOutcome::Accepted);
    assert_eq!(connections.load(Ordering::Relaxed), 2);
    server.abort();
}

#[tokio::test]
async fn an_unroutable_fcm_is_transient_within_the_deadline() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        // TEST-NET-1 (RFC 5737): never routed, so the connect fails or hangs.
        api_url: "http://192.0.2.1:9".to_owned(),
        request_deadline: Duration::from_millis(300),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    let started = Instant::now();
    let outcome = wake(&sender, "a").await;
    let took = started.elapsed();
    assert!(is_transient(&outcome), "{outcome:?}");
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert_eq!(fake.send_requests(), 0);
}

#[tokio::test]
async fn sends_waiting_on_a_hanging_connect_share_one_attempt_until_the_deadline() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    // Accepts TCP and never answers the TLS ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = FcmConfig {
        api_url: format!("https://{}", silent.local_addr().expect("addr")),
        request_deadline: Duration::from_millis(300),
        ..config(&fake)
    };
    let accepted = Arc::new(AtomicU64::new(0));
    let held = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        async move {
            let mut streams = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                streams.push(stream);
            }
        }
    });
    let sender = sender_with(&fake, &config).with_retry_policy(no_retries());
    let started = Instant::now();
    let outcomes = futures::future::join_all((0..10).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("t{n}")).await }
    }))
    .await;
    let took = started.elapsed();
    assert!(outcomes.iter().all(is_transient), "{outcomes:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "one connect for all");
    held.abort();
}

#[tokio::test]
async fn a_wake_up_in_flight_stays_small() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let sender = sender_with(&fake, &config(&fake));
    let device = super::device();
    let request = pushgate_core::WakeRequest {
        service: pushgate_core::PushService::Fcm,
        token: "t",
        device: Some(&device),
    };
    let wake_up = pushgate_core::Waker::wake(&sender, request);
    // Each wake-up in flight holds one; it was 1488 bytes through the general HTTP client.
    let size = std::mem::size_of_val(&*wake_up);
    assert!(size <= 1024, "{size} bytes");
}
