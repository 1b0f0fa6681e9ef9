//! The real `pushgate serve` binary as a child process: its settings file in a temp dir, a
//! SQLite database next to it, readiness through `/health`, SIGTERM to stop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{COMPONENT, COMPONENT_SECRET, UP_KEY};

/// What the settings file says beyond the fixed parts.
#[derive(Clone, Debug)]
pub struct PushgateOptions {
    /// The XMPP server's component port.
    pub component_port: u16,
    /// `[component] roles`.
    pub roles: Vec<&'static str>,
    /// `[fcm]`: the fake's API URL and its service-account file.
    pub fcm: Option<(String, PathBuf)>,
    /// `[fcm] request_deadline`.
    pub fcm_request_deadline: &'static str,
    /// `[unified_push] push_timeout`.
    pub push_timeout: &'static str,
    /// More `[unified_push]` lines (e.g. rate limits), as TOML.
    pub unified_push_extra: &'static str,
    /// More `[http]` lines, as TOML.
    pub http_extra: &'static str,
    /// Serve `/metrics` on a listener of its own ([`Pushgate::metrics_address`]).
    pub metrics: bool,
    /// More settings appended as they are (`[apns]`, `[[app]]`, more `[[component]]`s).
    pub extra: String,
    /// `[database] url`; a SQLite file in the instance's directory when not set.
    pub database_url: Option<String>,
    /// `[log] level`.
    pub log_level: &'static str,
    /// More keys of the `[[component]]` table (`mode = "shared"`).
    pub component_extra: &'static str,
}

impl PushgateOptions {
    /// Both roles on one link; no FCM.
    pub fn new(component_port: u16) -> Self {
        Self {
            component_port,
            roles: vec!["app_server", "unified_push"],
            fcm: None,
            fcm_request_deadline: "5s",
            push_timeout: "3s",
            unified_push_extra: "",
            http_extra: "",
            metrics: false,
            extra: String::new(),
            database_url: None,
            log_level: "debug",
            component_extra: "",
        }
    }
}

/// A running `pushgate serve`; killed when dropped (its log printed if the test panics).
pub struct Pushgate {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http: SocketAddr,
    metrics: Option<SocketAddr>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl Pushgate {
    /// Writes the settings, starts the binary and waits until `/health` says the link is up.
    pub async fn start(options: PushgateOptions) -> Self {
        let mut pushgate = Self::configure(options);
        pushgate.launch().await;
        pushgate
    }

    /// Writes the settings without starting the binary, so that a command (`import-p2`) can
    /// run on them first; [`Pushgate::launch`] starts it.
    pub fn configure(options: PushgateOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pushgate-e2e-")
            .tempdir()
            .expect("temp dir");
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics = options
            .metrics
            .then(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let mut config = settings(dir.path(), http, &options);
        if let Some(metrics) = metrics {
            config.push_str(&format!("\n[metrics]\nlisten = \"{metrics}\"\n"));
        }
        std::fs::write(dir.path().join("pushgate.toml"), config).expect("write settings");
        Self {
            child: None,
            dir,
            http,
            metrics,
        }
    }

    /// Starts the configured binary and waits until `/health` says the link is up.
    pub async fn launch(&mut self) {
        self.spawn();
        self.wait_ready(Duration::from_secs(20)).await;
    }

    /// The settings file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pushgate.toml")
    }

    /// Starts the binary on the settings file; its log goes to the end of `pushgate.log`.
    fn spawn(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pushgate.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve", "--config"])
            .arg(self.dir.path().join("pushgate.toml"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pushgate");
        self.child = Some(child);
    }

    /// Stops the process (SIGTERM, exit 0 expected) and starts it again on the same settings
    /// and database; returns once the link is up again.
    pub async fn restart(&mut self) -> Duration {
        let started = Instant::now();
        let code = self.terminate().await;
        assert_eq!(code, Some(0), "exit code on SIGTERM:\n{}", self.log());
        self.spawn();
        self.wait_ready(Duration::from_secs(20)).await;
        started.elapsed()
    }

    /// Kills the process (SIGKILL: no shutdown at all, as a crash or an OOM kill) and leaves
    /// it dead.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP), as a machine that hangs, or lets it go on (SIGCONT); its
    /// sockets stay open.
    pub fn freeze(&self, frozen: bool) {
        let child = self.child.as_ref().expect("pushgate is running");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let signalled = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        assert!(signalled, "pushgate could not be signalled");
    }

    /// Starts a killed process again on the same settings and database, and waits until it
    /// is healthy.
    pub async fn relaunch(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready(Duration::from_secs(20)).await;
    }

    /// Kills the process (SIGKILL: no shutdown at all, as a crash or an OOM kill) and starts it
    /// again on the same settings and database; returns once the link is up again.
    pub async fn crash_and_restart(&mut self) -> Duration {
        let started = Instant::now();
        self.kill();
        self.spawn();
        self.wait_ready(Duration::from_secs(20)).await;
        started.elapsed()
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("pushgate.db")
    }

    /// `[http] public_url`.
    pub fn public_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The `/metrics` listener, when [`PushgateOptions::metrics`] asked for one.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The public listener's address.
    pub fn http_address(&self) -> SocketAddr {
        self.http
    }

    /// Everything pushgate logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pushgate.log")).unwrap_or_default()
    }

    /// Log lines at info level and above that name a JID of `domain`: the brief's rule is that
    /// none do (bare JIDs included, to be safe: a user's address is personal data).
    pub fn info_lines_naming(&self, domain: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| {
                [" INFO ", " WARN ", " ERROR "]
                    .iter()
                    .any(|l| line.contains(l))
            })
            .filter(|line| line.contains(&format!("@{domain}")))
            .map(str::to_owned)
            .collect()
    }

    /// `/health` status and body, if it answers.
    pub async fn health(&self) -> Option<(u16, String)> {
        super::http::health(self.http).await
    }

    /// Waits until `/health` answers 200 (the component link is up and the database answers);
    /// returns how long that took.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some((200, _)) = self.health().await {
                return started.elapsed();
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("pushgate exited ({status}):\n{}", self.log());
            }
            if started.elapsed() > timeout {
                panic!(
                    "pushgate not ready within {timeout:?} (health {:?}):\n{}",
                    self.health().await,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/health` no longer answers 200 (the link noticed the server is gone).
    pub async fn wait_unready(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        while let Some((200, _)) = self.health().await {
            assert!(
                started.elapsed() < timeout,
                "pushgate still reports the link up after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    /// The most memory the process has held so far (its peak resident set, `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGTERM, then waits for the exit code (killing after 20 s).
    pub async fn stop(mut self) -> Option<i32> {
        self.terminate().await
    }

    async fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pushgate did not stop on SIGTERM:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Pushgate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- last lines of the pushgate log ---\n{}",
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}

fn settings(dir: &Path, http: SocketAddr, options: &PushgateOptions) -> String {
    let roles = options
        .roles
        .iter()
        .map(|role| format!("\"{role}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut settings = format!(
        r#"[[component]]
jid = "{COMPONENT}"
host = "127.0.0.1"
port = {port}
secret = "{COMPONENT_SECRET}"
roles = [{roles}]
connect_timeout = "2s"
handshake_timeout = "2s"
reconnect_max = "300ms"
{component_extra}

[database]
url = "{database}"

[http]
listen = "{http}"
public_url = "http://{http}"
{http_extra}

[unified_push]
keys = ["{UP_KEY}"]
push_timeout = "{push_timeout}"
{unified_push_extra}

[log]
level = "{log_level}"
"#,
        log_level = options.log_level,
        component_extra = options.component_extra,
        port = options.component_port,
        database = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/pushgate.db?mode=rwc", dir.display())),
        push_timeout = options.push_timeout,
        unified_push_extra = options.unified_push_extra,
        http_extra = options.http_extra,
    );
    if let Some((api_url, service_account)) = &options.fcm {
        settings.push_str(&format!(
            "\n[fcm]\nservice_account_file = \"{}\"\napi_url = \"{api_url}\"\nrequest_deadline = \"{}\"\n",
            service_account.display(),
            options.fcm_request_deadline,
        ));
    }
    settings.push('\n');
    settings.push_str(&options.extra);
    settings
}
