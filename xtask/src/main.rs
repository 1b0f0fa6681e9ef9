//! Developer automation: `cargo xtask ci | deb | interop | bench [NAME]`.
//!
//! - `ci`: what `.ci/run` runs after preparing the machine: `cargo fmt --all --check`,
//!   `cargo clippy --workspace --all-targets -- -D warnings` and the README's test command
//!   `cargo test --workspace`, with whatever database and interop variables are set
//!   (`.ci/run` sets them all, so nothing is skipped); last, `deb`.
//! - `deb`: builds the Debian package (`cargo deb -p pushgate`; cargo-deb and lintian come
//!   from `scripts/install-packaging-deps.sh`), checks it with lintian, installs it with
//!   `dpkg -i` (root), checks the installed binary and settings (`pushgate init` into
//!   /etc/pushgate when the binary has it, else the example with a fresh key) and purges it
//!   again, checking that its files are gone. It refuses to run when pushgate is already
//!   installed or /etc/pushgate/pushgate.toml exists, so the machine is left as it was.
//! - `interop`: only the tests against real Prosody and ejabberd, which must be installed.
//! - `bench`: runs a named benchmark; without a name lists them. A benchmark builds the release
//!   `pushgate` (`cargo build --release -p pushgate`) and the release driver
//!   (`pushgate-bench`), then runs the driver against `target/release/pushgate`, which runs as a
//!   process of its own so its CPU time and memory can be read alone.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod deb;

/// Variables that turn skipped tests into real ones.
const TEST_VARIABLES: &[(&str, &str)] = &[
    ("PUSHGATE_TEST_POSTGRES_URL", "PostgreSQL store tests"),
    ("PUSHGATE_TEST_MYSQL_URL", "MySQL/MariaDB store tests"),
    (
        "PUSHGATE_INTEROP",
        "interop tests fail instead of skipping when a server is missing (`required`)",
    ),
];

/// The test targets that run against real XMPP servers.
const INTEROP_TESTS: &[(&str, &str)] = &[
    ("pushgate-testkit", "interop_prosody"),
    ("pushgate-testkit", "interop_ejabberd"),
];

/// Benchmarks known to `cargo xtask bench`, as (name, what it measures). Each name is a
/// subcommand of the `pushgate-bench` driver (crates/bench).
const BENCHMARKS: &[(&str, &str)] = &[
    (
        "wakeup",
        "XEP-0357 publishes -> FCM and APNs wake-ups at 1/100/1000 in flight (fake XMPP server, fake FCM, fake APNs)",
    ),
    (
        "unifiedpush",
        "RFC 8030 POST -> IQ -> client -> 201 through a real Prosody at 1/16/64 connections",
    ),
    (
        "instances",
        "RFC 8030 POSTs through two instances on PostgreSQL and a real Prosody: to the link's holder, then to a standby that hands each push over, at 1/16 connections",
    ),
    (
        "store",
        "RFC 8030 POSTs stored for an offline client (4 KB) at 16/64/256 connections, empty and with 100k stored, on SQLite/PostgreSQL/MariaDB (fake XMPP server)",
    ),
];

const USAGE: &str =
    "usage: cargo xtask <ci | deb | interop | bench [wakeup | unifiedpush | instances | store]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deb") => deb::run(),
        Some("interop") => interop(&args[1..]),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), PathBuf::from)
}

pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// Runs one step, printing it and its duration; fails on a non-zero exit.
pub(crate) fn step(name: &str, mut command: Command) -> Result<(), String> {
    println!("==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{name}: cannot run: {e}"))?;
    println!(
        "<== {name}: {} in {:.1} s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

/// One TLS provider everywhere (aws-lc-rs): `ring` must not be in the dependency tree.
fn one_tls_provider() -> Result<(), String> {
    let name = "cargo tree -i ring (must find nothing)";
    println!("==> {name}");
    let output = cargo()
        .args([
            "tree",
            "--workspace",
            "--edges",
            "normal,build,dev",
            "-i",
            "ring",
        ])
        .output()
        .map_err(|e| format!("{name}: cannot run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // With nothing to show cargo prints only a warning ("nothing to print", or "did not match
    // any packages" in older versions) on stderr.
    let absent = stdout.trim().is_empty();
    println!("<== {name}: {}", if absent { "ok" } else { "FAILED" });
    if absent {
        Ok(())
    } else {
        Err(format!("{name}: ring is in the tree:\n{stdout}{stderr}"))
    }
}

fn ci() -> Result<(), String> {
    let started = Instant::now();
    for (variable, meaning) in TEST_VARIABLES {
        let state = if std::env::var_os(variable).is_some_and(|v| !v.is_empty()) {
            "set"
        } else {
            "unset, those tests skip"
        };
        println!("{variable}: {state} ({meaning})");
    }

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    step("cargo fmt --all --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    step(
        "cargo clippy --workspace --all-targets -- -D warnings",
        clippy,
    )?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    step("cargo doc --workspace --no-deps (warnings denied)", doc)?;

    one_tls_provider()?;

    // The README's test command, with the database matrix taken from the environment.
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    step("cargo test --workspace", test)?;

    deb::run()?;

    println!("ci passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn interop(extra: &[String]) -> Result<(), String> {
    let mut test = cargo();
    test.arg("test");
    for (package, target) in INTEROP_TESTS {
        test.args(["--package", package, "--test", target]);
    }
    test.arg("--").args(extra);
    // A missing server is a failure here, not a skip.
    test.env("PUSHGATE_INTEROP", "required");
    step("interop tests (PUSHGATE_INTEROP=required)", test)
}

fn bench(name: Option<&str>) -> Result<(), String> {
    let Some(name) = name else {
        for (name, what) in BENCHMARKS {
            println!("{name:<24} {what}");
        }
        return Ok(());
    };
    if !BENCHMARKS.iter().any(|(known, _)| *known == name) {
        let known: Vec<&str> = BENCHMARKS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown benchmark `{name}` (available: {})",
            known.join(", ")
        ));
    }
    // The measured binary is built on its own, with exactly its own features.
    let mut build = cargo();
    build.args(["build", "--release", "-p", "pushgate"]);
    step("cargo build --release -p pushgate", build)?;
    let mut build_driver = cargo();
    build_driver.args(["build", "--release", "-p", "pushgate-bench"]);
    step("cargo build --release -p pushgate-bench", build_driver)?;

    let release = target_dir().join("release");
    let mut run = Command::new(release.join("pushgate-bench"));
    run.arg(name)
        .arg("--pushgate")
        .arg(release.join("pushgate"))
        .current_dir(workspace_root());
    step(&format!("benchmark {name}"), run)
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` or the workspace's `target`.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}
