//! The measured pushgate: the release binary as a process of its own, so its CPU time and
//! memory are its alone. Its settings, database and log live in a temp dir.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::BenchError;

/// A running `pushgate serve`; killed when dropped, stopped cleanly by [`stop`](Self::stop).
pub struct PushgateProcess {
    child: Child,
    dir: TempDir,
}

impl PushgateProcess {
    /// A temp dir for the settings, database and log of one run.
    pub fn workdir() -> Result<TempDir, BenchError> {
        tempfile::Builder::new()
            .prefix("pushgate-bench-")
            .tempdir()
            .map_err(BenchError::io("create a temp dir"))
    }

    /// Writes `settings` to `dir/pushgate.toml` and starts `binary serve` on it, with
    /// `/metrics` served as an operator runs it: every metric is recorded, so its cost is in
    /// the numbers.
    pub fn start(binary: &Path, dir: TempDir, settings: &str) -> Result<Self, BenchError> {
        if !binary.is_file() {
            return Err(BenchError::Pushgate(format!(
                "no binary at {} (build it with `cargo build --release -p pushgate`)",
                binary.display()
            )));
        }
        let metrics_port = pushgate_testkit::free_port::free_loopback_port()
            .map_err(BenchError::io("find a free port"))?;
        let settings = format!("{settings}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
        let config = dir.path().join("pushgate.toml");
        std::fs::write(&config, settings).map_err(BenchError::io("write pushgate.toml"))?;
        let log = File::create(dir.path().join("pushgate.log"))
            .map_err(BenchError::io("create pushgate.log"))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            // The settings' log level applies; RUST_LOG would override it.
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(BenchError::io(format!("start {}", binary.display())))?;
        Ok(Self { child, dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pushgate.log")
    }

    /// The last `lines` lines pushgate wrote to standard error.
    pub fn log_tail(&self, lines: usize) -> String {
        pushgate_testkit::log_tail(&self.log_path(), lines)
    }

    /// Fails (with the end of its log) if pushgate has ended.
    pub fn ensure_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Pushgate(format!(
                "exited ({status})\n--- last lines of its log ---\n{}",
                self.log_tail(30)
            ))),
            Err(error) => Err(BenchError::io("check on pushgate")(error)),
        }
    }

    /// SIGTERM, then up to 10 s for a clean exit, then SIGKILL. Returns whether it exited
    /// cleanly (status 0) after SIGTERM.
    pub async fn stop(mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent && Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for PushgateProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
