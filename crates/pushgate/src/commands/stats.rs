//! `pushgate stats`: what the database holds, in counts: registrations by service and domain
//! (live and dead), kept messages, revocations. Domains are printed; no token, secret, node or
//! JID is in any of it.

use std::process::ExitCode;

use pushgate_store::StoreStats;

use super::{StoreCommandError, on_store};
use crate::settings::{Settings, SettingsFile};

/// The arguments of `stats`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
            ExitCode::from(error.exit_code())
        }
    }
}

fn count(file: &SettingsFile) -> Result<StoreStats, StoreCommandError> {
    let settings = Settings::load(file)?;
    on_store(&settings, async |store| Ok(store.stats().await?))
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
