//! A real Synapse (Matrix's reference homeserver, from PyPI) run as a throwaway child process
//! on loopback, and the few client-server API calls a push test needs: users by shared secret,
//! a direct room, a message, an HTTP pusher.
//!
//! Synapse is installed into a virtualenv by `scripts/install-synapse.sh` (at
//! [`DEFAULT_VENV`], or where `PUSHGATE_SYNAPSE` says); without it, tests skip unless
//! `PUSHGATE_INTEROP=required`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::free_port::free_loopback_port;
use crate::server_process::{HarnessError, ServerProcess, log_tail};

const SERVER: &str = "synapse";

/// Where `scripts/install-synapse.sh` puts the virtualenv.
pub const DEFAULT_VENV: &str = "/opt/pushgate-test/synapse";

/// The environment variable naming another virtualenv.
pub const VENV_VAR: &str = "PUSHGATE_SYNAPSE";

/// The homeserver's name: users are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";

/// How a Synapse is started.
#[derive(Clone, Debug)]
pub struct SynapseOptions {
    /// How long to wait for its client API to answer.
    pub start_timeout: Duration,
}

impl Default for SynapseOptions {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A user logged in to the homeserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixUser {
    /// `@name:localhost`.
    pub user_id: String,
    /// The access token of its device.
    pub access_token: String,
    /// Its device id.
    pub device_id: String,
}

/// A running Synapse; killed and its directory removed when dropped.
#[derive(Debug)]
pub struct SynapseInstance {
    dir: TempDir,
    port: u16,
    shared_secret: String,
    http: reqwest::Client,
    transactions: std::sync::atomic::AtomicU64,
    _process: ServerProcess,
    started_in: Duration,
}

impl SynapseInstance {
    /// Writes a configuration into a new temp dir and starts Synapse, returning once its
    /// client API answers.
    pub async fn start(options: SynapseOptions) -> Result<Self, HarnessError> {
        let python = venv().join("bin/python");
        if !python.is_file() {
            return Err(HarnessError::NotInstalled {
                server: SERVER,
                missing: format!(
                    "{} (run scripts/install-synapse.sh, or set {VENV_VAR})",
                    python.display()
                ),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("pushgate-synapse-")
            .tempdir()
            .map_err(HarnessError::io("create temp dir"))?;
        let port = free_loopback_port().map_err(HarnessError::io("find a free port"))?;
        let shared_secret = format!("{:032x}", rand_u128());
        let config = config(dir.path(), port, &shared_secret);
        std::fs::write(dir.path().join("homeserver.yaml"), config)
            .map_err(HarnessError::io("write homeserver.yaml"))?;
        std::fs::write(dir.path().join("log.yaml"), log_config(dir.path()))
            .map_err(HarnessError::io("write log.yaml"))?;
        let started = Instant::now();
        let generated = Command::new(&python)
            .args([
                "-m",
                "synapse.app.homeserver",
                "--generate-keys",
                "--config-path",
            ])
            .arg(dir.path().join("homeserver.yaml"))
            .output()
            .map_err(HarnessError::io("generate Synapse's signing key"))?;
        if !generated.status.success() {
            return Err(HarnessError::Command {
                command: "synapse.app.homeserver --generate-keys".to_owned(),
                output: String::from_utf8_lossy(&generated.stderr).into_owned(),
            });
        }
        let mut command = Command::new(&python);
        command
            .args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(dir.path().join("homeserver.yaml"))
            .current_dir(dir.path());
        let log = dir.path().join("homeserver.log");
        let mut process = ServerProcess::spawn(
            SERVER,
            command,
            &dir.path().join("synapse.out"),
            log.clone(),
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|error| HarnessError::Command {
                command: "build an HTTP client".to_owned(),
                output: error.to_string(),
            })?;
        let versions = format!("http://127.0.0.1:{port}/_matrix/client/versions");
        loop {
            let answered = http.get(&versions).send().await;
            if answered.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            process.ensure_running()?;
            if started.elapsed() > options.start_timeout {
                return Err(HarnessError::StartTimeout {
                    server: SERVER,
                    waited: options.start_timeout,
                    log: log.display().to_string(),
                    log_tail: log_tail(&log, 40),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            dir,
            port,
            shared_secret,
            http,
            transactions: std::sync::atomic::AtomicU64::new(0),
            _process: process,
            started_in: started.elapsed(),
        })
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The client API's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long the start took (key generation included).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The homeserver's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("homeserver.log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }

    /// Registers `localpart` through the shared-secret admin API (as `register_new_matrix_user`
    /// does) and returns the logged-in user.
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
    ) -> Result<MatrixUser, HarnessError> {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let nonce = self.call(self.http.get(&url), None).await?;
        let nonce = nonce["nonce"].as_str().unwrap_or_default().to_owned();
        // HMAC-SHA1 over nonce NUL user NUL password NUL "notadmin", keyed by the secret.
        let key = hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.shared_secret.as_bytes(),
        );
        let message = format!("{nonce}\0{localpart}\0{password}\0notadmin");
        let mac = hmac::sign(&key, message.as_bytes());
        let mac: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let body = json!({"nonce": nonce, "username": localpart, "password": password,
                          "admin": false, "mac": mac});
        let registered = self.call(self.http.post(&url), Some(&body)).await?;
        Ok(MatrixUser {
            user_id: text(&registered, "user_id")?,
            access_token: text(&registered, "access_token")?,
            device_id: text(&registered, "device_id")?,
        })
    }

    /// `creator` makes a direct, private room and invites `invitee`, who joins; the room id.
    pub async fn create_direct_room(
        &self,
        creator: &MatrixUser,
        invitee: &MatrixUser,
    ) -> Result<String, HarnessError> {
        let url = format!("{}/_matrix/client/v3/createRoom", self.base_url());
        let body = json!({"is_direct": true, "preset": "trusted_private_chat",
                          "invite": [invitee.user_id]});
        let created = self
            .call(self.authorized(self.http.post(&url), creator), Some(&body))
            .await?;
        let room_id = text(&created, "room_id")?;
        let join = format!(
            "{}/_matrix/client/v3/rooms/{}/join",
            self.base_url(),
            encode(&room_id)
        );
        self.call(
            self.authorized(self.http.post(&join), invitee),
            Some(&json!({})),
        )
        .await?;
        Ok(room_id)
    }

    /// `sender` sends a text message to `room_id`; the event id.
    pub async fn send_text(
        &self,
        sender: &MatrixUser,
        room_id: &str,
        body: &str,
    ) -> Result<String, HarnessError> {
        let txn = self
            .transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/t{txn}",
            self.base_url(),
            encode(room_id)
        );
        let sent = self
            .call(
                self.authorized(self.http.put(&url), sender),
                Some(&json!({"msgtype": "m.text", "body": body})),
            )
            .await?;
        text(&sent, "event_id")
    }

    /// Sets an HTTP pusher for `user`, as a Matrix app does for UnifiedPush: `pushkey` is the
    /// endpoint, `gateway_url` the gateway's notify URL, `format` e.g. `event_id_only`.
    pub async fn set_http_pusher(
        &self,
        user: &MatrixUser,
        pushkey: &str,
        gateway_url: &str,
        format: Option<&str>,
    ) -> Result<(), HarnessError> {
        let url = format!("{}/_matrix/client/v3/pushers/set", self.base_url());
        let mut data = json!({ "url": gateway_url });
        if let Some(format) = format {
            data["format"] = json!(format);
        }
        let body = json!({"kind": "http", "app_id": "im.vector.app.android",
                          "app_display_name": "Element", "device_display_name": "phone",
                          "pushkey": pushkey, "lang": "en", "data": data});
        self.call(self.authorized(self.http.post(&url), user), Some(&body))
            .await
            .map(|_| ())
    }

    /// `user`'s pushers.
    pub async fn pushers(&self, user: &MatrixUser) -> Result<Vec<Value>, HarnessError> {
        let url = format!("{}/_matrix/client/v3/pushers", self.base_url());
        let answer = self
            .call(self.authorized(self.http.get(&url), user), None)
            .await?;
        Ok(answer["pushers"].as_array().cloned().unwrap_or_default())
    }

    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        user: &MatrixUser,
    ) -> reqwest::RequestBuilder {
        request.header("authorization", format!("Bearer {}", user.access_token))
    }

    /// Sends `request` (with `body` as JSON) and returns the JSON answer, or the error.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        body: Option<&Value>,
    ) -> Result<Value, HarnessError> {
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => request,
        };
        let failed = |output: String| HarnessError::Command {
            command: "a Synapse client-server API call".to_owned(),
            output,
        };
        let answer = request
            .send()
            .await
            .map_err(|error| failed(error.to_string()))?;
        let status = answer.status();
        let bytes = answer
            .bytes()
            .await
            .map_err(|error| failed(error.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes).map_err(|error| failed(error.to_string()))
    }
}

fn text(value: &Value, key: &str) -> Result<String, HarnessError> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| HarnessError::Command {
            command: "a Synapse client-server API call".to_owned(),
            output: format!("no `{key}` in {value}"),
        })
}

/// A room id in a path (`!` and `:` percent-encoded).
fn encode(room_id: &str) -> String {
    room_id.replace('!', "%21").replace(':', "%3A")
}

fn venv() -> PathBuf {
    std::env::var_os(VENV_VAR)
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from)
}

fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    // The secret only needs to differ between runs.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u128::from_le_bytes(bytes)
}

/// The homeserver's configuration, each line there for a reason:
/// - one client listener on loopback, no TLS, no federation (`federation_domain_whitelist: []`,
///   no key servers): nothing leaves the machine;
/// - SQLite and every file in the test's directory;
/// - registration only by shared secret;
/// - `ip_range_whitelist: ["127.0.0.1"]`: Synapse refuses to push to loopback otherwise;
/// - rate limits out of the way of a test's bursts.
fn config(dir: &Path, port: u16, shared_secret: &str) -> String {
    let dir = dir.display();
    format!(
        r#"server_name: "{SERVER_NAME}"
pid_file: "{dir}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{dir}/homeserver.db"
log_config: "{dir}/log.yaml"
media_store_path: "{dir}/media"
signing_key_path: "{dir}/signing.key"
registration_shared_secret: "{shared_secret}"
enable_registration: false
macaroon_secret_key: "{shared_secret}-macaroon"
form_secret: "{shared_secret}-form"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
ip_range_whitelist: ["127.0.0.1"]
rc_message: {{per_second: 10000, burst_count: 10000}}
rc_registration: {{per_second: 10000, burst_count: 10000}}
rc_joins:
  local: {{per_second: 10000, burst_count: 10000}}
rc_invites:
  per_room: {{per_second: 10000, burst_count: 10000}}
  per_user: {{per_second: 10000, burst_count: 10000}}
rc_login:
  address: {{per_second: 10000, burst_count: 10000}}
  account: {{per_second: 10000, burst_count: 10000}}
  failed_attempts: {{per_second: 10000, burst_count: 10000}}
"#
    )
}

/// INFO to `homeserver.log` (the pusher's decisions are logged at INFO), SQL quiet.
fn log_config(dir: &Path) -> String {
    format!(
        r#"version: 1
formatters:
  precise:
    format: "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "{}/homeserver.log"
    filters: [context]
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"#,
        dir.display()
    )
}
