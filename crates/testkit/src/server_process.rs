//! A real XMPP server run as a child process of a test: its errors, start-up wait and end.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Why a real server could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The server's programs are not on this machine; tests skip unless `PUSHGATE_INTEROP=required`.
    #[error("{server} is not installed: {missing}")]
    NotInstalled {
        /// Which server ("prosody", "ejabberd").
        server: &'static str,
        /// What was looked for and not found.
        missing: String,
    },
    /// Writing the config, spawning a program or similar failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server ran but did not open all its ports in time.
    #[error(
        "{server} did not open its ports within {waited:?}\n--- last lines of {log} ---\n{log_tail}"
    )]
    StartTimeout {
        /// Which server.
        server: &'static str,
        /// How long was waited.
        waited: Duration,
        /// The server's log file.
        log: String,
        /// The end of that log.
        log_tail: String,
    },
    /// The server process ended while it was expected to run.
    #[error("{server} exited ({status})\n--- last lines of {log} ---\n{log_tail}")]
    Exited {
        /// Which server.
        server: &'static str,
        /// The exit status as text.
        status: String,
        /// The server's log file.
        log: String,
        /// The end of that log.
        log_tail: String,
    },
    /// An administrative command (user registration, rpc) failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command, without secrets.
        command: String,
        /// What it printed or why it failed.
        output: String,
    },
}

impl HarnessError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> HarnessError {
        let action = action.into();
        move |source| HarnessError::Io { action, source }
    }
}

/// Returns the last `lines` lines of a text file, or a note why it could not be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Finds an executable on `PATH`.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A running server process; killed (SIGKILL) and reaped when dropped, also during a panic.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    server: &'static str,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with stdout and stderr appended to `output`; `log` is the file whose
    /// tail explains failures.
    pub(crate) fn spawn(
        server: &'static str,
        mut command: Command,
        output: &Path,
        log: PathBuf,
    ) -> Result<Self, HarnessError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .map_err(HarnessError::io(format!("open {}", output.display())))?;
        let err = out
            .try_clone()
            .map_err(HarnessError::io("duplicate output file"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(HarnessError::io(format!("spawn {server}")))?;
        Ok(Self { server, child, log })
    }

    /// Waits until every port accepts a TCP connection on 127.0.0.1; returns how long it took.
    pub(crate) async fn wait_for_ports(
        &mut self,
        ports: &[u16],
        timeout: Duration,
    ) -> Result<Duration, HarnessError> {
        let started = Instant::now();
        let mut open = vec![false; ports.len()];
        loop {
            for (port, is_open) in ports.iter().zip(open.iter_mut()) {
                if !*is_open {
                    *is_open = TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                        .await
                        .is_ok();
                }
            }
            if open.iter().all(|o| *o) {
                return Ok(started.elapsed());
            }
            self.ensure_running()?;
            if started.elapsed() > timeout {
                return Err(HarnessError::StartTimeout {
                    server: self.server,
                    waited: timeout,
                    log: self.log.display().to_string(),
                    log_tail: log_tail(&self.log, 40),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Fails with [`HarnessError::Exited`] if the process has ended.
    pub(crate) fn ensure_running(&mut self) -> Result<(), HarnessError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(self.exited(e.to_string())),
        }
    }

    fn exited(&self, status: String) -> HarnessError {
        HarnessError::Exited {
            server: self.server,
            status,
            log: self.log.display().to_string(),
            log_tail: log_tail(&self.log, 40),
        }
    }

    /// Freezes the process (SIGSTOP) or lets it go on (SIGCONT), as a hung server or a VM
    /// paused by its host would; its sockets stay open. Whether the signal was delivered.
    pub(crate) fn freeze(&self, frozen: bool) -> bool {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Asks the server to shut down (SIGTERM) and waits up to `grace` before killing it.
    pub(crate) async fn terminate(mut self, grace: Duration) {
        // Both Prosody and the Erlang VM (OTP ≥ 20) treat SIGTERM as an orderly shutdown.
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + grace;
        while signalled && Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Drop kills and reaps.
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors mean the process is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
