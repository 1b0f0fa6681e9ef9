//! A throwaway Prosody 0.12 for interop tests: config, data and log in a temp dir, loopback
//! ports chosen at start, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::free_port::free_loopback_port;
use crate::server_process::{HarnessError, ServerProcess, find_program, log_tail};

const SERVER: &str = "prosody";

/// What the Prosody instance should serve.
#[derive(Debug, Clone)]
pub struct ProsodyOptions {
    /// The virtual host, e.g. `example.test`.
    pub domain: String,
    /// External components (XEP-0114) as (component JID, shared secret).
    pub components: Vec<(String, String)>,
    /// Accounts on `domain` as (localpart, password).
    pub users: Vec<(String, String)>,
    /// Extra Lua appended to the end of the config (e.g. another `Component` section).
    pub extra_config: String,
    /// Extra Lua for the global section, before any host (e.g.
    /// `component_conflict_resolve = "kick_old"`).
    pub global_config: String,
    /// How long to wait for the ports to open.
    pub start_timeout: Duration,
}

impl Default for ProsodyOptions {
    fn default() -> Self {
        Self {
            domain: "example.test".to_owned(),
            components: Vec::new(),
            users: Vec::new(),
            extra_config: String::new(),
            global_config: String::new(),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// A running Prosody; stopped and its directory removed when dropped. If dropped during a
/// panic, the end of its log is printed.
#[derive(Debug)]
pub struct ProsodyInstance {
    options: ProsodyOptions,
    dir: TempDir,
    c2s_port: u16,
    component_port: u16,
    http_port: u16,
    process: Option<ServerProcess>,
    last_start: Duration,
}

impl ProsodyInstance {
    /// Writes a config into a new temp dir, registers the users and starts `prosody -F`,
    /// returning once its c2s, component and HTTP ports accept connections.
    pub async fn start(options: ProsodyOptions) -> Result<Self, HarnessError> {
        for program in ["prosody", "prosodyctl"] {
            if find_program(program).is_none() {
                return Err(HarnessError::NotInstalled {
                    server: SERVER,
                    missing: format!("`{program}` not on PATH (apt-get install prosody)"),
                });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("pushgate-prosody-")
            .tempdir()
            .map_err(HarnessError::io("create temp dir"))?;
        for sub in ["data", "certs"] {
            std::fs::create_dir(dir.path().join(sub))
                .map_err(HarnessError::io(format!("create {sub} dir")))?;
        }
        let port = || free_loopback_port().map_err(HarnessError::io("find a free port"));
        let mut instance = Self {
            c2s_port: port()?,
            component_port: port()?,
            http_port: port()?,
            options,
            dir,
            process: None,
            last_start: Duration::ZERO,
        };
        std::fs::write(instance.config_path(), instance.config())
            .map_err(HarnessError::io("write prosody.cfg.lua"))?;
        for (user, password) in instance.options.users.clone() {
            instance.register(&user, &password)?;
        }
        instance.launch().await?;
        Ok(instance)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    fn config(&self) -> String {
        let dir = self.dir.path().display();
        let mut config = format!(
            r#"-- Written by pushgate-testkit for one test run.
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
plugin_paths = {{ "/usr/lib/prosody/modules" }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
s2s_ports = {{ }}
modules_enabled = {{
  "roster"; "saslauth"; "disco"; "ping"; "register"; "time"; "version";
  "smacks"; "cloud_notify"; "http";
}}
modules_disabled = {{ "s2s"; "tls"; "offline_email" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
allow_registration = true
min_seconds_between_registrations = 0
smacks_hibernation_time = 60
push_notification_with_body = false
push_notification_with_sender = false
push_max_errors = 16
http_default_host = "{domain}"
statistics = nil
{global}

VirtualHost "{domain}"
"#,
            global = self.options.global_config,
            c2s = self.c2s_port,
            component = self.component_port,
            http = self.http_port,
            domain = self.options.domain,
        );
        for (jid, secret) in &self.options.components {
            config.push_str(&format!(
                "\nComponent \"{jid}\"\n    component_secret = \"{secret}\"\n"
            ));
        }
        config.push('\n');
        config.push_str(&self.options.extra_config);
        config
    }

    /// Creates an account with `prosodyctl register` (works while the server runs).
    pub fn register(&self, user: &str, password: &str) -> Result<(), HarnessError> {
        let output = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.config_path())
            .args(["register", user, &self.options.domain, password])
            .output()
            .map_err(HarnessError::io("run prosodyctl"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: format!("prosodyctl register {user} {}", self.options.domain),
                output: format!(
                    "{}: {}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    async fn launch(&mut self) -> Result<(), HarnessError> {
        let mut command = Command::new("prosody");
        command.arg("-F").arg("--config").arg(self.config_path());
        let mut process = ServerProcess::spawn(
            SERVER,
            command,
            &self.dir.path().join("prosody.out"),
            self.log_path(),
        )?;
        let ports = [self.c2s_port, self.component_port, self.http_port];
        self.last_start = process
            .wait_for_ports(&ports, self.options.start_timeout)
            .await?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops Prosody (SIGTERM, then SIGKILL after 5 s); ports and data stay reserved.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(Duration::from_secs(5)).await;
        }
    }

    /// Starts Prosody again after [`stop`](Self::stop), on the same ports with the same data
    /// (a no-op while it runs).
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Stops and starts Prosody on the same ports with the same data.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await;
        self.launch().await
    }

    /// Freezes Prosody (SIGSTOP) or lets it go on (SIGCONT); its sockets stay open, as with a
    /// hung server. Whether it was running to be signalled.
    pub fn freeze(&self, frozen: bool) -> bool {
        self.process
            .as_ref()
            .is_some_and(|process| process.freeze(frozen))
    }

    /// Fails if the server process has ended.
    pub fn ensure_running(&mut self) -> Result<(), HarnessError> {
        match self.process.as_mut() {
            Some(process) => process.ensure_running(),
            None => Err(HarnessError::Exited {
                server: SERVER,
                status: "stopped by the test".to_owned(),
                log: self.log_path().display().to_string(),
                log_tail: self.log_tail(20),
            }),
        }
    }

    /// The virtual host.
    pub fn domain(&self) -> &str {
        &self.options.domain
    }

    /// The client-to-server port on 127.0.0.1.
    pub fn c2s_port(&self) -> u16 {
        self.c2s_port
    }

    /// The XEP-0114 component port on 127.0.0.1.
    pub fn component_port(&self) -> u16 {
        self.component_port
    }

    /// The HTTP port on 127.0.0.1.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// How long the last (re)start took from spawning until all ports accepted connections.
    pub fn last_start_duration(&self) -> Duration {
        self.last_start
    }

    /// The temp dir holding config, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Prosody's debug log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    /// The last `lines` lines of Prosody's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }
}

impl Drop for ProsodyInstance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        // Dropping the process kills and reaps it before the temp dir goes.
        self.process.take();
    }
}
