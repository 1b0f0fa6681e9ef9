//! The command line: `pushgate serve`, `pushgate check-config`, `pushgate import-p2`,
//! `--config`, `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{Settings, SettingsError, SettingsFile};

/// Exit code for settings that cannot be used.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while running (database unreachable, port taken, …).
pub const EXIT_RUNTIME: u8 = 1;

/// XEP-0357 app server and UnifiedPush provider over one XMPP component.
#[derive(Debug, Parser)]
#[command(name = "pushgate", version, about)]
pub struct Cli {
    /// The settings file (default: $PUSHGATE_CONFIG, else ./pushgate.toml if present).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the component links and the HTTP listener until SIGINT or SIGTERM.
    Serve,
    /// Check the settings and print the effective values, secrets redacted.
    CheckConfig,
    /// Write a complete, commented settings file (to --config, else ./pushgate.toml) with a
    /// fresh component secret and UnifiedPush key, and print the XMPP server's side.
    Init(crate::commands::init::InitArgs),
    /// Print a new UnifiedPush endpoint key, and how to rotate it in.
    Keygen(crate::commands::keygen::KeygenArgs),
    /// Look at or revoke a UnifiedPush endpoint.
    #[command(subcommand)]
    Endpoint(crate::commands::endpoint::EndpointCommand),
    /// Count what the database holds: registrations by service and domain, kept messages,
    /// revocations.
    Stats(crate::commands::stats::StatsArgs),
    /// Send one test push and print each hop's outcome: to an XEP-0357 registration
    /// (--node, --domain) through FCM, or to a UnifiedPush endpoint (--endpoint) through the
    /// running pushgate.
    TestPush(crate::commands::test_push::TestPushArgs),
    /// Print the last deliveries of a registration (--node) or a UnifiedPush account (--jid,
    /// --endpoint), hop by hop, as the running pushgate recorded them.
    Trace(crate::commands::trace::TraceArgs),
    /// Copy p2's registrations (its MySQL/MariaDB `target` table) into pushgate's database,
    /// so devices registered with p2 keep being woken without registering again.
    ImportP2(crate::commands::import_p2::ImportP2Args),
}

/// Runs `check-config`: prints the effective settings on stdout (exit 0), or the problems on
/// stderr (exit 2).
pub fn check_config(file: &SettingsFile) -> ExitCode {
    match Settings::load(file).and_then(|settings| settings.to_redacted_toml()) {
        Ok(rendered) => {
            match file.path() {
                Some(path) => println!("# effective settings: {} + environment", path.display()),
                None => println!(
                    "# effective settings: built-in defaults + environment (no settings file: first-run settings, data directory {})",
                    crate::first_run::DataDir::locate().path().display()
                ),
            }
            print!("{rendered}");
            ExitCode::SUCCESS
        }
        Err(error) => report_settings_error(&error),
    }
}

/// Prints a settings error and gives the exit code for it.
pub fn report_settings_error(error: &SettingsError) -> ExitCode {
    eprintln!("pushgate: {error}");
    ExitCode::from(EXIT_CONFIG)
}
