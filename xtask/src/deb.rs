//! `cargo xtask deb`: build the Debian package, lint it, install it, check it, purge it.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{cargo, step, workspace_root};

/// The settings file the packaged unit reads (and waits for).
const SETTINGS: &str = "/etc/pushgate/pushgate.toml";
/// The example settings as the package installs them.
const EXAMPLE: &str = "/usr/share/doc/pushgate/examples/pushgate.toml";
/// The example's placeholder for the UnifiedPush key.
const KEY_PLACEHOLDER: &str = "REPLACE-WITH-openssl-rand-base64-32=";
/// What the package installs, checked after `dpkg -i` and again (gone) after `dpkg --purge`.
const PACKAGED: &[&str] = &[
    "/usr/bin/pushgate",
    "/usr/lib/systemd/system/pushgate.service",
    "/usr/share/doc/pushgate/copyright",
    "/usr/share/doc/pushgate/changelog.Debian.gz",
    "/usr/share/doc/pushgate/README.md",
    "/usr/share/doc/pushgate/install.md",
    "/usr/share/doc/pushgate/configuration.md",
    EXAMPLE,
    "/usr/share/doc/pushgate/examples/prosody.cfg.lua",
    "/usr/share/doc/pushgate/examples/ejabberd.yml",
    "/usr/share/lintian/overrides/pushgate",
];
/// Left behind by the systemd integration until the package is purged.
const ENABLED_LINK: &str = "/etc/systemd/system/multi-user.target.wants/pushgate.service";

pub(crate) fn run() -> Result<(), String> {
    let started = Instant::now();
    units_alike()?;
    changelog_current()?;
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("deb: cannot run id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("deb: installs and purges the package with dpkg: run it as root".to_owned());
    }
    if installed()? {
        return Err(
            "deb: the pushgate package is installed on this machine; this step installs \
             and purges it, so it does not run here"
                .to_owned(),
        );
    }
    if Path::new(SETTINGS).exists() {
        return Err(format!(
            "deb: {SETTINGS} exists; this step writes it with `pushgate init`, so it does not run here"
        ));
    }
    let package = build()?;

    let mut lintian = Command::new("lintian");
    lintian
        .args(["--fail-on", "error,warning", "--display-info"])
        .arg(&package);
    step("lintian --fail-on error,warning", lintian).map_err(|message| {
        format!("{message}; is lintian installed? bash scripts/install-packaging-deps.sh")
    })?;

    let mut install = Command::new("dpkg");
    install.arg("--install").arg(&package);
    let guard = Purge;
    step("dpkg --install", install)?;
    let result = check_installed();
    drop(guard);
    result?;
    check_purged()?;
    println!("deb passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// deploy/debian/pushgate.service is deploy/pushgate.service with the packaged binary path and
/// a condition on the settings file: anything else that differs is drift.
fn units_alike() -> Result<(), String> {
    let root = workspace_root();
    let read = |path: &str| {
        fs::read_to_string(root.join(path)).map_err(|e| format!("deb: cannot read {path}: {e}"))
    };
    // Everything from [Unit] on, without comments (the headers say different things).
    let body = |text: &str| -> Vec<String> {
        let start = text.find("[Unit]").unwrap_or(0);
        text[start..]
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let plain = body(&read("deploy/pushgate.service")?.replace("/usr/local/bin/", "/usr/bin/"));
    let packaged: Vec<String> = body(&read("deploy/debian/pushgate.service")?)
        .into_iter()
        .filter(|line| line != &format!("ConditionPathExists={SETTINGS}"))
        .collect();
    if plain == packaged {
        println!("deb: deploy/debian/pushgate.service matches deploy/pushgate.service");
        Ok(())
    } else {
        Err(
            "deb: deploy/debian/pushgate.service differs from deploy/pushgate.service by more \
             than /usr/bin and ConditionPathExists=; make the same change in both"
                .to_owned(),
        )
    }
}

/// The newest entry of deploy/debian/changelog is this version (cargo-deb's revision `-1`):
/// a version bump needs a changelog entry.
fn changelog_current() -> Result<(), String> {
    let path = "deploy/debian/changelog";
    let changelog = fs::read_to_string(workspace_root().join(path))
        .map_err(|e| format!("deb: cannot read {path}: {e}"))?;
    let expected = format!("pushgate ({}-1) ", env!("CARGO_PKG_VERSION"));
    if changelog.starts_with(&expected) {
        Ok(())
    } else {
        Err(format!(
            "deb: {path} does not start with `{expected}…`: add an entry for this version"
        ))
    }
}

fn installed() -> Result<bool, String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", "pushgate"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("deb: cannot run dpkg-query: {e}"))?;
    let status = String::from_utf8_lossy(&output.stdout);
    Ok(output.status.success() && !status.trim().is_empty() && status.trim() != "not-installed")
}

/// `cargo deb -p pushgate`, into the target dir's `debian/`; returns the package's path.
fn build() -> Result<PathBuf, String> {
    let name = "cargo deb -p pushgate --locked";
    println!("==> {name}");
    let started = Instant::now();
    let output = cargo()
        .args(["deb", "-p", "pushgate", "--locked"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{name}: cannot run: {e}"))?;
    // cargo-deb prints the path of the package it wrote on stdout.
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    println!(
        "<== {name}: {} in {:.1} s",
        if output.status.success() {
            "ok"
        } else {
            "FAILED"
        },
        started.elapsed().as_secs_f64()
    );
    if !output.status.success() {
        return Err(format!(
            "{name} failed ({}); is cargo-deb installed? bash scripts/install-packaging-deps.sh",
            output.status
        ));
    }
    let package = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| line.ends_with(".deb"))
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name}: no .deb path in its output"))?;
    // A relative path is relative to where cargo ran: the workspace root.
    Ok(workspace_root().join(package))
}

/// Checks the installed package: its files, the binary, the settings.
fn check_installed() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGED
        .iter()
        .copied()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if !missing.is_empty() {
        return Err(format!("deb: not installed: {}", missing.join(", ")));
    }
    if !Path::new(ENABLED_LINK).exists() {
        return Err(format!(
            "deb: the unit is not enabled ({ENABLED_LINK} missing)"
        ));
    }

    let mut version = Command::new("/usr/bin/pushgate");
    version.arg("--version");
    step("/usr/bin/pushgate --version", version)?;

    let has_init = Command::new("/usr/bin/pushgate")
        .args(["help", "init"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if has_init {
        init_and_check()
    } else {
        example_check()
    }
}

/// `pushgate init` into /etc/pushgate, then `check-config` on what it wrote. Afterwards
/// removes what was not there before: the directory if this step made it, else the entries
/// `init` added to it.
fn init_and_check() -> Result<(), String> {
    let dir = Path::new(SETTINGS)
        .parent()
        .unwrap_or_else(|| Path::new("/etc"));
    let before: Option<Vec<PathBuf>> = dir.exists().then(|| entries(dir));
    let result = (|| {
        fs::create_dir_all(dir)
            .map_err(|e| format!("deb: cannot create {}: {e}", dir.display()))?;
        let mut init = Command::new("/usr/bin/pushgate");
        init.args(["init", "--config", SETTINGS]);
        step(&format!("pushgate init --config {SETTINGS}"), init)?;
        check_config(Path::new(SETTINGS))
    })();
    match before {
        None => {
            let _ = fs::remove_dir_all(dir);
        }
        Some(before) => {
            for entry in entries(dir).into_iter().filter(|e| !before.contains(e)) {
                let _ = if entry.is_dir() {
                    fs::remove_dir_all(&entry)
                } else {
                    fs::remove_file(&entry)
                };
            }
        }
    }
    result
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|read| read.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// `check-config` on a copy of the installed example with a fresh key in place of the
/// placeholder (for a binary without `pushgate init`).
fn example_check() -> Result<(), String> {
    println!("deb: this pushgate has no `init`; checking a copy of the installed example");
    let example =
        fs::read_to_string(EXAMPLE).map_err(|e| format!("deb: cannot read {EXAMPLE}: {e}"))?;
    if !example.contains(KEY_PLACEHOLDER) {
        return Err(format!("deb: {EXAMPLE} has no {KEY_PLACEHOLDER}"));
    }
    let copy = std::env::temp_dir().join(format!("pushgate-deb-{}.toml", std::process::id()));
    fs::write(&copy, example.replace(KEY_PLACEHOLDER, &fresh_key()?))
        .map_err(|e| format!("deb: cannot write {}: {e}", copy.display()))?;
    let result = check_config(&copy);
    let _ = fs::remove_file(&copy);
    result
}

fn check_config(settings: &Path) -> Result<(), String> {
    let mut check = Command::new("/usr/bin/pushgate");
    check.arg("check-config").arg("--config").arg(settings);
    step(
        &format!("pushgate check-config --config {}", settings.display()),
        check,
    )
}

/// Standard base64 of 32 random bytes, like `openssl rand -base64 32`.
fn fresh_key() -> Result<String, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("deb: cannot read /dev/urandom: {e}"))?;
    let mut key = String::with_capacity(44);
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (i, byte)| {
            word | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                key.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                key.push('=');
            }
        }
    }
    Ok(key)
}

/// After `dpkg --purge`: nothing of the package is left, the unit is no longer enabled.
fn check_purged() -> Result<(), String> {
    let mut left: Vec<&str> = PACKAGED
        .iter()
        .copied()
        .chain([ENABLED_LINK, "/usr/share/doc/pushgate"])
        .filter(|path| Path::new(path).exists() || Path::new(path).is_symlink())
        .collect();
    if installed()? {
        left.push("the package (dpkg still lists it)");
    }
    if left.is_empty() {
        println!("deb: purged, nothing left");
        Ok(())
    } else {
        Err(format!("deb: left after purge: {}", left.join(", ")))
    }
}

/// Purges the package when dropped, so a failed check does not leave it installed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let mut purge = Command::new("dpkg");
        purge.args(["--purge", "pushgate"]);
        if let Err(message) = step("dpkg --purge pushgate", purge) {
            eprintln!("xtask: {message}");
        }
    }
}
