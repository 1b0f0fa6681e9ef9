//! A throwaway ejabberd 23.01 for interop tests, run directly as an Erlang node (`ejabberdctl`
//! switches user): config, Mnesia data and logs in a temp dir, loopback ports chosen at start,
//! a private epmd on its own port, everything killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port::free_loopback_port;
use crate::server_process::{HarnessError, ServerProcess, find_program, log_tail};

const SERVER: &str = "ejabberd";

/// Overrides where the ejabberd Erlang application is looked for (the directory that
/// contains `ejabberd-<version>/ebin`).
pub const EJABBERD_LIBS_VAR: &str = "PUSHGATE_EJABBERD_LIBS";

static NODE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// What the ejabberd instance should serve.
#[derive(Debug, Clone)]
pub struct EjabberdOptions {
    /// The virtual host, e.g. `example.test`.
    pub domain: String,
    /// External components (XEP-0114) as (component JID, shared secret).
    pub components: Vec<(String, String)>,
    /// Accounts on `domain` as (localpart, password).
    pub users: Vec<(String, String)>,
    /// Extra YAML lines inserted under `modules:`, indented by two spaces
    /// (e.g. `"  mod_register: {}\n"`).
    pub extra_modules: String,
    /// How long to wait for the ports to open and the users to be registered.
    pub start_timeout: Duration,
}

impl Default for EjabberdOptions {
    fn default() -> Self {
        Self {
            domain: "example.test".to_owned(),
            components: Vec::new(),
            users: Vec::new(),
            extra_modules: String::new(),
            start_timeout: Duration::from_secs(20),
        }
    }
}

/// A running ejabberd node; killed, its epmd stopped and its directory removed when dropped.
/// If dropped during a panic, the end of its log is printed.
#[derive(Debug)]
pub struct EjabberdInstance {
    options: EjabberdOptions,
    dir: TempDir,
    erl_libs: PathBuf,
    node: String,
    cookie: String,
    epmd_port: u16,
    c2s_port: u16,
    component_port: u16,
    process: Option<ServerProcess>,
    last_start: Duration,
}

/// Finds the directory holding `ejabberd-<version>/ebin/ejabberd.app` (Debian installs it under
/// `/usr/lib/<multiarch>/`).
fn find_erl_libs() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(EJABBERD_LIBS_VAR) {
        return Some(PathBuf::from(dir));
    }
    let mut candidates = vec![PathBuf::from("/usr/lib")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(entries.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("-linux-"))
        }));
    }
    candidates.into_iter().find(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("ejabberd-")
                    && e.path().join("ebin/ejabberd.app").is_file()
            })
        })
    })
}

/// Quotes a string as an Erlang binary literal.
fn erlang_binary(text: &str) -> String {
    format!(
        "<<\"{}\"/utf8>>",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

impl EjabberdInstance {
    /// Writes a config into a new temp dir, starts the node and registers the users over rpc,
    /// returning once its ports accept connections and the users exist.
    pub async fn start(options: EjabberdOptions) -> Result<Self, HarnessError> {
        for program in ["erl", "epmd"] {
            if find_program(program).is_none() {
                return Err(HarnessError::NotInstalled {
                    server: SERVER,
                    missing: format!("`{program}` not on PATH (apt-get install ejabberd)"),
                });
            }
        }
        let erl_libs = find_erl_libs().ok_or_else(|| HarnessError::NotInstalled {
            server: SERVER,
            missing: format!(
                "no ejabberd-*/ebin/ejabberd.app under /usr/lib/*-linux-*/ (set {EJABBERD_LIBS_VAR})"
            ),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("pushgate-ejabberd-")
            .tempdir()
            .map_err(HarnessError::io("create temp dir"))?;
        let port = || free_loopback_port().map_err(HarnessError::io("find a free port"));
        let n = NODE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut instance = Self {
            node: format!("pgtk{}n{n}@localhost", std::process::id()),
            cookie: format!("pushgate{}c{n}", std::process::id()),
            epmd_port: port()?,
            c2s_port: port()?,
            component_port: port()?,
            erl_libs,
            options,
            dir,
            process: None,
            last_start: Duration::ZERO,
        };
        std::fs::write(instance.config_path(), instance.config())
            .map_err(HarnessError::io("write ejabberd.yml"))?;
        instance.launch().await?;
        let users = instance.options.users.clone();
        instance.register_all(&users).await?;
        Ok(instance)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.yml")
    }

    fn config(&self) -> String {
        let mut config = format!(
            r#"# Written by pushgate-testkit for one test run.
hosts:
  - "{domain}"
loglevel: info
log_rotate_count: 0
certfiles: []
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    starttls_required: false
"#,
            domain = self.options.domain,
            c2s = self.c2s_port,
        );
        if !self.options.components.is_empty() {
            config.push_str(&format!(
                "  -\n    port: {}\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n    hosts:\n",
                self.component_port
            ));
            for (jid, secret) in &self.options.components {
                config.push_str(&format!(
                    "      \"{jid}\":\n        password: \"{secret}\"\n"
                ));
            }
        }
        config.push_str(
            "modules:\n  mod_disco: {}\n  mod_roster: {}\n  mod_offline: {}\n  mod_stream_mgmt:\n    resume_timeout: 60\n  mod_push:\n    include_body: false\n    include_sender: false\n  mod_push_keepalive: {}\n  mod_ping: {}\n  mod_caps: {}\n",
        );
        config.push_str(&self.options.extra_modules);
        config
    }

    /// Environment shared by the server node and the control nodes: a private epmd on its own
    /// port keeps parallel instances (and other Erlang users of the machine) apart.
    fn erl_command(&self) -> Command {
        let mut command = Command::new("erl");
        command
            .env("ERL_LIBS", &self.erl_libs)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("HOME", self.dir.path())
            .args(["-setcookie", &self.cookie, "-noinput"])
            .args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"]);
        command
    }

    async fn launch(&mut self) -> Result<(), HarnessError> {
        let dir = self.dir.path();
        let mut command = self.erl_command();
        command
            .env("EJABBERD_CONFIG_PATH", self.config_path())
            .env("EJABBERD_LOG_PATH", self.log_path())
            .args(["-sname", &self.node])
            .args(["-mnesia", "dir", &format!("\"{}/db\"", dir.display())])
            .args(["-s", "ejabberd"]);
        let mut process =
            ServerProcess::spawn(SERVER, command, &dir.join("erl.out"), self.log_path())?;
        let mut ports = vec![self.c2s_port];
        if !self.options.components.is_empty() {
            ports.push(self.component_port);
        }
        self.last_start = process
            .wait_for_ports(&ports, self.options.start_timeout)
            .await?;
        self.process = Some(process);
        Ok(())
    }

    /// Evaluates an Erlang expression on a hidden control node; returns what it printed.
    async fn eval(&self, expression: &str) -> Result<String, HarnessError> {
        let n = NODE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut command = self.erl_command();
        command
            .args([
                "-hidden",
                "-sname",
                &format!("pgtkctl{}n{n}@localhost", std::process::id()),
            ])
            .args(["-eval", expression]);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .map_err(|e| HarnessError::Command {
                command: "erl -eval".to_owned(),
                output: e.to_string(),
            })?
            .map_err(HarnessError::io("run erl control node"))?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .trim()
        .to_owned())
    }

    async fn register_all(&self, users: &[(String, String)]) -> Result<(), HarnessError> {
        if users.is_empty() {
            return Ok(());
        }
        let host = erlang_binary(&self.options.domain);
        let calls: Vec<String> = users
            .iter()
            .map(|(user, password)| {
                format!(
                    "rpc:call('{node}', ejabberd_auth, try_register, [{u}, {host}, {p}])",
                    node = self.node,
                    u = erlang_binary(user),
                    p = erlang_binary(password),
                )
            })
            .collect();
        let expression = format!(
            "R = [{}], io:format(\"~w~n\", [R]), halt().",
            calls.join(", ")
        );
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            let output = self.eval(&expression).await?;
            // try_register answers `ok`, or `{error,exists}` when the data dir already has the
            // user; anything else (`{badrpc,...}`, `{error,not_allowed}`) means the node is not
            // ready yet (Mnesia tables load after the listeners open).
            let expected = format!("[{}]", vec!["ok"; users.len()].join(","));
            if output.replace("{error,exists}", "ok") == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Command {
                    command: "ejabberd_auth:try_register".to_owned(),
                    output,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates an account over rpc (retried while the node is still starting).
    pub async fn register(&self, user: &str, password: &str) -> Result<(), HarnessError> {
        self.register_all(&[(user.to_owned(), password.to_owned())])
            .await
    }

    /// Stops the node (SIGTERM → orderly `init:stop()`, SIGKILL after 10 s); ports, data and
    /// epmd stay.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(Duration::from_secs(10)).await;
        }
    }

    /// Starts the node again after [`stop`](Self::stop), on the same ports with the same data
    /// (a no-op while it runs).
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Stops and starts the node on the same ports with the same data.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await;
        self.launch().await
    }

    /// Freezes the node (SIGSTOP) or lets it go on (SIGCONT); its sockets stay open, as with a
    /// hung server. Whether it was running to be signalled.
    pub fn freeze(&self, frozen: bool) -> bool {
        self.process
            .as_ref()
            .is_some_and(|process| process.freeze(frozen))
    }

    /// Fails if the node process has ended.
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

    /// The XEP-0114 component port on 127.0.0.1 (listening only when components were given).
    pub fn component_port(&self) -> u16 {
        self.component_port
    }

    /// The Erlang node name (`name@localhost`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long the last (re)start took from spawning until all ports accepted connections.
    pub fn last_start_duration(&self) -> Duration {
        self.last_start
    }

    /// The temp dir holding config, Mnesia data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// ejabberd's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.log")
    }

    /// The last `lines` lines of ejabberd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }
}

impl Drop for EjabberdInstance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        // Kill the node first: epmd refuses `-kill` while a node is registered, and it
        // notices the dead node only once the node's connection to it is closed.
        self.process.take();
        for _ in 0..50 {
            let killed = Command::new("epmd")
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .args(["-port", &self.epmd_port.to_string(), "-kill"])
                .output();
            match killed {
                Ok(out) if String::from_utf8_lossy(&out.stdout).contains("not allowed") => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
    }
}
