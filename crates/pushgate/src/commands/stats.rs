//! `pushgate stats`: what the database holds, in counts: registrations by service and domain
//! (live and dead), kept messages, revocations. Domains are printed; no token, secret, node or
//! JID is in any of it.

use std::process::ExitCode;

use pushgate_store::{SqlStore, StoreSetupError, StoreStats};

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::settings::{Settings, SettingsError, SettingsFile};

/// The arguments of `stats`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why no counts came.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreSetupError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] pushgate_core::StoreError),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs `stats`: 0 with the counts, 2 for unusable settings, 1 when the database fails.
pub fn run(file: &SettingsFile, args: &StatsArgs) -> ExitCode {
    match count(file) {
        Ok(stats) => {
            if args.json {
                println!("{}", serde_json::to_string(&stats).unwrap_or_default());
            } else {
                print!("{}", text(&stats));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pushgate: {error}");
            ExitCode::from(match error {
                StatsError::Settings(_) => EXIT_CONFIG,
                _ => EXIT_RUNTIME,
            })
        }
    }
}

fn count(file: &SettingsFile) -> Result<StoreStats, StatsError> {
    let settings = Settings::load(file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatsError::Runtime)?;
    runtime.block_on(async {
        let store = SqlStore::connect(&settings.database.store_config()).await?;
        Ok(store.stats().await?)
    })
}

fn text(stats: &StoreStats) -> String {
    let live: u64 = stats.registrations.iter().map(|count| count.live).sum();
    let dead: u64 = stats.registrations.iter().map(|count| count.dead).sum();
    let mut out = format!("registrations: {live} live, {dead} with a dead token\n");
    if !stats.registrations.is_empty() {
        out.push_str(&format!(
            "  {:<8} {:<40} {:>10} {:>10}\n",
            "service", "domain", "live", "dead"
        ));
    }
    for count in &stats.registrations {
        out.push_str(&format!(
            "  {:<8} {:<40} {:>10} {:>10}\n",
            count.service, count.domain, count.live, count.dead
        ));
    }
    out.push_str(&format!(
        "stored messages: {} for {} client(s)\nrevoked endpoints: {}\n",
        stats.stored_messages, stats.owners_with_messages, stats.revocations
    ));
    out
}
