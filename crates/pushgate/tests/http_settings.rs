//! The `[http]` connection settings as an operator meets them: their defaults and checks in
//! `check-config`, and the open files limit `pushgate serve` raises at start.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{MINIMAL, Workdir};

/// Keeps the lines of `[section]` from check-config's output.
fn section<'a>(output: &'a str, header: &str) -> Vec<&'a str> {
    output
        .lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn connection_settings_have_defaults_for_ten_thousand_clients_and_can_be_changed() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let out = dir.run(&["check-config"], &[]).ok();
    let http = section(&out, "[http]");
    for line in [
        "max_connections = 16384",
        "max_connections_per_address = 256",
        r#"body_read_timeout = "10s""#,
        r#"header_read_timeout = "10s""#,
    ] {
        assert!(http.contains(&line), "{line}: {out}");
    }
    let out = dir
        .run(
            &["check-config"],
            &[
                ("PUSHGATE_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "0"),
                ("PUSHGATE_HTTP__BODY_READ_TIMEOUT", "3s"),
            ],
        )
        .ok();
    let http = section(&out, "[http]");
    assert!(http.contains(&"max_connections_per_address = 0"), "{out}");
    assert!(http.contains(&r#"body_read_timeout = "3s""#), "{out}");
    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_HTTP__BODY_READ_TIMEOUT", "0s")],
        )
        .config_error();
    assert!(err.contains("`http.body_read_timeout`"), "{err}");
    assert!(err.contains("longer than zero"), "{err}");
}

/// Starts `pushgate serve` under `ulimit_args` (a shell's `ulimit`) and returns the JSON log
/// lines about the open files limit, once they are written; the process is then stopped.
fn open_files_log_under(ulimit_args: &str) -> Vec<String> {
    let dir = Workdir::new();
    let file = dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[http]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\n"),
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {ulimit_args} && exec \"$0\" --config \"$1\" serve"
        ))
        .arg(env!("CARGO_BIN_EXE_pushgate"))
        .arg(&file)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pushgate starts");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut found = Vec::new();
    // The limit is logged before anything else is started; the next line (or the end of the
    // output) shows whether a warning followed.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
        let about_files = line.contains("open files limit");
        if about_files {
            found.push(line);
        } else if !found.is_empty() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found
}

#[test]
fn serve_raises_the_open_files_limit_to_the_hard_limit() {
    let hard = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("ASCII");
    let hard = hard.trim();
    let log = open_files_log_under("-Sn 1024");
    let raised = log
        .iter()
        .find(|line| line.contains(r#""level":"INFO""#))
        .unwrap_or_else(|| panic!("an info line about the limit: {log:?}"));
    let expected = if hard == "unlimited" {
        r#""hard":"unlimited""#.to_owned()
    } else {
        format!(r#""soft":"{hard}","hard":"{hard}""#)
    };
    assert!(raised.contains(&expected), "{expected} in {raised}");
    if hard != "unlimited" && hard.parse::<u64>().is_ok_and(|hard| hard < 16_384 + 400) {
        assert!(
            log.iter().any(|line| line.contains(r#""level":"WARN""#)),
            "{log:?}"
        );
    }
}

#[test]
fn serve_warns_when_the_hard_limit_is_too_low_for_max_connections() {
    let log = open_files_log_under("-n 2000");
    assert!(
        log.iter()
            .any(|line| line.contains(r#""level":"INFO""#) && line.contains(r#""soft":"2000""#)),
        "{log:?}"
    );
    let warning = log
        .iter()
        .find(|line| line.contains(r#""level":"WARN""#))
        .unwrap_or_else(|| panic!("a warning: {log:?}"));
    assert!(warning.contains("http.max_connections"), "{warning}");
    assert!(warning.contains(r#""needed":16706"#), "{warning}");
}
