//! The first ten minutes: `pushgate serve` with no settings file at all, and `pushgate init`
//! → `check-config` → `serve`, each against a real Prosody with nothing edited by hand. The
//! environment only moves ports, as an operator's would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::http::post_push;
use e2e::{ServerKind, XmppServer};
use pushgate_testkit::c2s_client::stanza::iq_result_to;
use pushgate_testkit::conversations::{
    decode_push_content, directed_presence, read_push_registration, read_up_push,
    read_up_registered, register_push_fcm, up_hash, up_register,
};

const BINARY: &str = env!("CARGO_BIN_EXE_pushgate");

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// `pushgate ARGS` in `dir`, with only `PATH` and `env` in its environment.
fn pushgate(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    pushgate(dir, args, env).output().expect("pushgate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

/// The value of `component_secret = "…"` in printed Prosody settings.
fn printed_secret(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("component_secret = "))?;
    Some(line.split('"').nth(1)?.to_owned())
}

/// A `pushgate serve` child, killed when dropped.
struct Serving {
    child: Child,
    http: SocketAddr,
    log: std::path::PathBuf,
}

impl Serving {
    fn start(dir: &Path, args: &[&str], env: &[(&str, String)], http: SocketAddr) -> Self {
        let log = dir.join("serve.log");
        let stdout = dir.join("serve.out");
        let child = pushgate(dir, args, env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("pushgate serve starts");
        Self { child, http, log }
    }

    async fn health(&self) -> Option<(u16, String)> {
        e2e::http::health(self.http).await
    }

    /// Waits for `/health` to say 200; panics with the log after `limit`.
    async fn wait_up(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some((200, _)) = self.health().await {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "pushgate never became healthy:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both roles through a Conversations-like client: a XEP-0357 registration gets its node and
/// secret, and a message POSTed to a UnifiedPush endpoint reaches the client.
async fn both_roles_serve(server: &XmppServer, component: &str) {
    let alice = server.login("alice", "Conversations.first").await;
    alice.send_presence().await.unwrap();
    alice.send(directed_presence(component)).await.unwrap();

    let answer = alice
        .iq(register_push_fcm(
            component,
            "fcm-token-first-run",
            "a1b2c3d4e5f60718",
        ))
        .await
        .unwrap();
    let registration =
        read_push_registration(&answer, component).expect("register-push-fcm answered");
    assert_eq!(registration.jid.as_deref(), Some(component));
    assert_eq!(registration.node.len(), 12);

    let application = up_hash("first-run", "org.example.app");
    let instance = up_hash("first-run", "instance");
    let answer = alice
        .iq(up_register(component, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, component)
        .expect("UnifiedPush registration answered")
        .endpoint;
    let posted = tokio::spawn(async move { post_push(&endpoint, b"first message", 60).await });
    let mut alice = alice;
    let push = alice
        .recv_where(|stanza| read_up_push(stanza).is_some())
        .await
        .expect("the push reached the client");
    let content = read_up_push(&push).unwrap().content;
    assert_eq!(
        decode_push_content(&content).as_deref(),
        Some(&b"first message"[..])
    );
    alice.send(iq_result_to(&push)).await.unwrap();
    assert_eq!(posted.await.unwrap().status, 201);
}

#[test]
fn init_writes_a_private_complete_file_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let written = run(
        dir.path(),
        &[
            "init",
            "--jid",
            "push.example.org",
            "--public-url",
            "https://up.example.org",
        ],
        &[],
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    let file = dir.path().join("pushgate.toml");
    assert_eq!(mode(&file), 0o600);
    let settings = std::fs::read_to_string(&file).unwrap();
    let stdout = text(&written.stdout);
    // The snippets carry the secret the file holds.
    let secret = printed_secret(&stdout).expect("a Prosody snippet with the secret");
    assert!(
        settings.contains(&format!("secret = \"{secret}\"")),
        "{settings}"
    );
    assert!(
        stdout.contains("Component \"push.example.org\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("password: \"{secret}\"")),
        "{stdout}"
    );
    // Commented like the example, with nothing left to replace.
    assert!(settings.contains("# keepalive_idle"), "{settings}");
    assert!(!settings.contains("REPLACE-WITH") && !settings.contains("change-me"));

    let checked = run(
        dir.path(),
        &["check-config", "--config", "pushgate.toml"],
        &[],
    );
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let effective = text(&checked.stdout);
    assert!(
        effective.contains("jid = \"push.example.org\""),
        "{effective}"
    );
    assert!(
        !effective.contains(&secret),
        "check-config printed the secret"
    );

    // A second init refuses, and the file is as it was.
    let again = run(dir.path(), &["init"], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("never overwrites"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), settings);
}

#[test]
fn init_refuses_flags_that_make_unusable_settings_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["init", "--jid", "user@push.example.org"][..],
        &["init", "--public-url", "ftp://up.example.org"][..],
        &["init", "--roles", "p2"][..],
        &["init", "--database", "oracle://db"][..],
    ] {
        let refused = run(dir.path(), args, &[]);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&refused.stderr)
        );
        assert!(!dir.path().join("pushgate.toml").exists(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_check_config_and_serve_run_both_roles_through_prosody() {
    let test = "init_check_config_and_serve_run_both_roles_through_prosody";
    let dir = tempfile::tempdir().unwrap();
    let http = free_address();
    let component = "push.example.test";
    let written = run(
        dir.path(),
        &[
            "init",
            "--jid",
            component,
            "--public-url",
            &format!("http://{http}"),
        ],
        &[],
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    let secret = printed_secret(&text(&written.stdout)).expect("the secret in the snippet");
    let checked = run(dir.path(), &["check-config"], &[]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));

    let Some(server) =
        XmppServer::start_with_component(ServerKind::Prosody, test, &["alice"], component, &secret)
            .await
    else {
        return;
    };
    // Ports are the only thing moved, through the environment as documented.
    let env = [
        (
            "PUSHGATE_COMPONENT__PORT",
            server.component_port().to_string(),
        ),
        ("PUSHGATE_HTTP__LISTEN", http.to_string()),
    ];
    let serving = Serving::start(dir.path(), &["serve"], &env, http);
    serving.wait_up(Duration::from_secs(20)).await;
    both_roles_serve(&server, component).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_settings_keeps_its_state_and_links_up_once_the_server_knows_it() {
    let test = "serve_without_settings_keeps_its_state_and_links_up_once_the_server_knows_it";
    let dir = tempfile::tempdir().unwrap();
    let http = free_address();
    let data = dir.path().join("pushgate-data");
    // Nothing listens on the component port yet: pushgate must keep trying.
    let component_port = free_address().port();
    let env = [
        ("PUSHGATE_COMPONENT__PORT", component_port.to_string()),
        ("PUSHGATE_HTTP__LISTEN", http.to_string()),
        ("PUSHGATE_HTTP__PUBLIC_URL", format!("http://{http}")),
    ];
    let serving = Serving::start(dir.path(), &["serve"], &env, http);
    let started = Instant::now();
    let health = loop {
        if let Some(health) = serving.health().await {
            break health;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no /health");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health.0, 503, "{}", health.1);
    let body: serde_json::Value = serde_json::from_str(&health.1).expect("JSON");
    assert_eq!(body["links"][0]["jid"], "push.localhost");
    // Never up yet: still connecting, not "down".
    assert_eq!(body["links"][0]["state"], "connecting", "{}", health.1);

    // The data directory: owner only, the secret printed once with the server's snippets.
    assert_eq!(mode(&data), 0o700);
    for file in ["component.secret", "up.keys", "pushgate.db"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let secret = std::fs::read_to_string(data.join("component.secret"))
        .unwrap()
        .trim()
        .to_owned();
    let printed = std::fs::read_to_string(dir.path().join("serve.out")).unwrap();
    assert_eq!(
        printed_secret(&printed).as_deref(),
        Some(secret.as_str()),
        "{printed}"
    );

    // The XMPP server learns the secret and starts listening; the retrying link comes up.
    let Some(server) = XmppServer::start_with_component(
        ServerKind::Prosody,
        test,
        &["alice"],
        "push.localhost",
        &secret,
    )
    .await
    else {
        return;
    };
    drop(serving);
    let env = [
        (
            "PUSHGATE_COMPONENT__PORT",
            server.component_port().to_string(),
        ),
        ("PUSHGATE_HTTP__LISTEN", http.to_string()),
        ("PUSHGATE_HTTP__PUBLIC_URL", format!("http://{http}")),
    ];
    let serving = Serving::start(dir.path(), &["serve"], &env, http);
    serving.wait_up(Duration::from_secs(20)).await;
    // The second start kept the secret and did not print it again.
    assert_eq!(
        std::fs::read_to_string(data.join("component.secret"))
            .unwrap()
            .trim(),
        secret
    );
    let printed = std::fs::read_to_string(dir.path().join("serve.out")).unwrap();
    assert!(!printed.contains(&secret), "{printed}");
    assert!(printed.contains("component.secret"), "{printed}");
    both_roles_serve(&server, "push.localhost").await;

    // A link that was up and is lost is "down".
    drop(server);
    let started = Instant::now();
    loop {
        if let Some((503, body)) = serving.health().await
            && body.contains(r#""state":"down""#)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lost link never showed as down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_data_directory_follows_pushgate_data_dir_then_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("chosen");
    let state = dir.path().join("state");
    let checked = run(
        dir.path(),
        &["check-config"],
        &[
            ("PUSHGATE_DATA_DIR", chosen.display().to_string()),
            ("STATE_DIRECTORY", state.display().to_string()),
        ],
    );
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(chosen.join("component.secret").exists());
    assert!(!state.exists());
    assert!(text(&checked.stdout).contains(&chosen.display().to_string()));

    let checked = run(
        dir.path(),
        &["check-config"],
        &[("STATE_DIRECTORY", state.display().to_string())],
    );
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(state.join("up.keys").exists());
    assert!(!dir.path().join("pushgate-data").exists());
}
