//! `pushgate serve` as a process: it comes up healthy, answers HTTP, and stops cleanly on
//! SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Workdir;
use pushgate_testkit::fake_xmpp_server::{FakeXmppServer, FromComponent};

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// One HTTP/1.1 GET; returns the status code and the body.
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls `/health` until it answers 200.
fn wait_healthy(address: SocketAddr, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, body)) = http_get(address, "/health") {
            return body;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("pushgate exited early: {status}");
        }
        assert!(Instant::now() < deadline, "pushgate did not become healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().expect("exited, not killed by a signal");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pushgate did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running pushgate that is killed if the test ends (or panics) before it exits.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(dir: &Workdir, config: &str) -> Running {
    let file = dir.write("pushgate.toml", config);
    let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
    dir.command(
        &["serve", "--config", file.to_str().expect("utf-8")],
        &[
            ("RUST_LOG", "debug"),
            // What Kubernetes puts in the environment of every pod beside a Service named
            // `pushgate`: not settings, and no reason to refuse to start.
            ("PUSHGATE_PORT", "tcp://10.0.0.1:8080"),
            ("PUSHGATE_SERVICE_HOST", "10.0.0.1"),
            ("PUSHGATE_SERVICE_PORT", "8080"),
            ("PUSHGATE_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .map(Running)
    .expect("start pushgate")
}

fn log(dir: &Workdir) -> String {
    std::fs::read_to_string(dir.path().join("stderr.log")).expect("read log")
}

/// Settings for one component at `port` with its secret in a file, SQLite in `dir`, HTTP on
/// `address`.
fn settings(dir: &Workdir, component_port: u16, address: SocketAddr) -> String {
    let secret = dir.write("component.secret", "component-secret-value\n");
    format!(
        r#"
[[component]]
jid = "push.example.test"
port = {component_port}
secret_file = "{}"
reconnect_max = "200ms"
[database]
url = "sqlite://{}/pushgate.db?mode=rwc"
[http]
listen = "{address}"
public_url = "http://{address}"
[unified_push]
keys = ["jDfGXnfoC3JTs23VHxvhI/d8BU5VP9MEDrg4H/a0hcE="]
"#,
        secret.display(),
        dir.path().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_links_up_reports_healthy_and_closes_the_stream_on_sigterm() {
    serve_and_stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_works_the_same_on_several_runtime_threads() {
    serve_and_stop(Some(3)).await;
}

/// Links up, answers HTTP and XMPP, and stops cleanly on SIGTERM, with the runtime's default
/// thread count or `worker_threads`.
async fn serve_and_stop(worker_threads: Option<usize>) {
    let server = FakeXmppServer::start("push.example.test", "component-secret-value")
        .await
        .expect("fake XMPP server");
    let dir = Workdir::new();
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut config = settings(&dir, server.port(), address);
    if let Some(threads) = worker_threads {
        config.push_str(&format!("[runtime]\nworker_threads = {threads}\n"));
    }
    let mut child = spawn(&dir, &config);

    // The handshake only succeeds with the secret read from secret_file, newline dropped.
    let mut session = server
        .next_session(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no component session; log:\n{}", log(&dir)));
    assert_eq!(session.stream_to(), Some("push.example.test"));
    assert_eq!(server.rejected_handshakes(), 0);

    let body = tokio::task::block_in_place(|| wait_healthy(address, &mut child));
    let mut health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    // A fresh id each run: 8 hex digits, the first part of the instance's IQ ids.
    let instance = health["instance"].take();
    let instance = instance.as_str().expect("an instance id");
    assert!(
        instance.len() == 8 && instance.bytes().all(|b| b.is_ascii_hexdigit()),
        "{instance}"
    );
    assert_eq!(
        health,
        serde_json::json!({
            "status": "ok",
            "instance": null,
            "links": [{"jid": "push.example.test", "state": "up", "mode": "single"}],
            "database": "ok",
        })
    );
    assert_eq!(
        http_get(address, "/push/anything"),
        Some((200, r#"{"unifiedpush":{"version":1}}"#.to_owned()))
    );
    assert_eq!(
        http_get(address, "/nope").map(|(status, _)| status),
        Some(404)
    );

    // A request no role handles is answered service-unavailable (cancel).
    session.send_raw(
        "<iq type='get' id='q1' from='example.test' to='push.example.test'>\
         <query xmlns='urn:example:unknown'/></iq>",
    );
    let answer = session
        .recv(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(answer.attr("type"), Some("error"), "{answer:?}");
    assert_eq!(answer.attr("id"), Some("q1"));
    let error = answer
        .get_child("error", "jabber:component:accept")
        .expect("error element");
    assert_eq!(error.attr("type"), Some("cancel"));
    assert!(error.has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));

    sigterm(&child);
    let mut stream_closed = false;
    while let Some(event) = session.next_event(Duration::from_secs(10)).await {
        match event {
            FromComponent::StreamEnd => {
                stream_closed = true;
                break;
            }
            FromComponent::Closed => break,
            FromComponent::Stanza(_) => {}
        }
    }
    assert!(
        stream_closed,
        "the fake server saw </stream:stream>; log:\n{}",
        log(&dir)
    );
    let code = tokio::task::block_in_place(|| wait_exit(&mut child));
    assert_eq!(code, 0, "log:\n{}", log(&dir));
    let log = log(&dir);
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(
        !log.contains("component-secret-value"),
        "no secret in logs, even at debug:\n{log}"
    );
    assert!(TcpStream::connect(address).is_err(), "the listener is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_cannot_connect_makes_health_503_and_sigterm_still_exits_0() {
    let dir = Workdir::new();
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // Nothing listens on this port: the link keeps reconnecting.
    let mut child = spawn(&dir, &settings(&dir, free_port(), address));
    let health = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((status, body)) = http_get(address, "/health") {
                return (status, body);
            }
            assert!(
                Instant::now() < deadline,
                "no HTTP answer; log:\n{}",
                log(&dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(health.0, 503, "{}", health.1);
    let body: serde_json::Value = serde_json::from_str(&health.1).expect("JSON");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["links"][0]["jid"], "push.example.test");
    assert_ne!(body["links"][0]["state"], "up");

    sigterm(&child);
    let code = tokio::task::block_in_place(|| wait_exit(&mut child));
    assert_eq!(code, 0, "log:\n{}", log(&dir));
}

#[test]
fn an_unopenable_database_exits_1() {
    let dir = Workdir::new();
    let mut child = spawn(
        &dir,
        &format!(
            "{}[database]\nurl = \"sqlite://{}/no/such/dir/x.db?mode=rwc\"\n[http]\nlisten = \"127.0.0.1:{}\"\n",
            common::MINIMAL,
            dir.path().display(),
            free_port()
        ),
    );
    assert_eq!(wait_exit(&mut child), 1, "log:\n{}", log(&dir));
    assert!(log(&dir).contains("database"), "{}", log(&dir));
}

#[test]
fn a_taken_http_port_exits_1() {
    let dir = Workdir::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address");
    let mut child = spawn(
        &dir,
        &format!(
            "{}[database]\nurl = \"sqlite://{}/x.db?mode=rwc\"\n[http]\nlisten = \"{address}\"\n",
            common::MINIMAL,
            dir.path().display()
        ),
    );
    assert_eq!(wait_exit(&mut child), 1, "log:\n{}", log(&dir));
    assert!(log(&dir).contains(&address.to_string()), "{}", log(&dir));
}

#[test]
fn serve_with_bad_settings_exits_2() {
    let dir = Workdir::new();
    let mut child = spawn(&dir, "[component]\njid = \"push.example.test\"\n");
    assert_eq!(wait_exit(&mut child), 2);
    assert!(log(&dir).contains("component.secret"), "{}", log(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener() {
    let server = FakeXmppServer::start("push.example.test", "component-secret-value")
        .await
        .expect("fake XMPP server");
    let dir = Workdir::new();
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!(
        "{}\n[metrics]\nlisten = \"{metrics}\"\n",
        settings(&dir, server.port(), address)
    );
    let mut child = spawn(&dir, &config);
    let _session = server
        .next_session(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no component session; log:\n{}", log(&dir)));
    tokio::task::block_in_place(|| wait_healthy(address, &mut child));

    let (status, body) = http_get(metrics, "/metrics").expect("metrics answer");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("pushgate_component_connected{jid=\"push.example.test\"} 1"),
        "{body}"
    );
    assert!(body.contains("pushgate_build_info{version="), "{body}");
    // The public listener does not expose them.
    assert_eq!(
        http_get(address, "/metrics").map(|(status, _)| status),
        Some(404)
    );

    sigterm(&child);
    let code = tokio::task::block_in_place(|| wait_exit(&mut child));
    assert_eq!(code, 0, "log:\n{}", log(&dir));
}
