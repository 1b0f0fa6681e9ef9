//! `pushgate stats`: what the database holds, in counts: registrations by service and domain
//! (live and dead), kept messages, revocations; and on PostgreSQL, the instances running and
//! the links each holds. Domains are printed; no token, secret, node or
//! JID is in any of it.

use std::process::ExitCode;

use pushgate_core::unified_push::iso8601_utc;
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
    let links: Vec<String> = settings
        .component
        .iter()
        .map(|component| component.jid.clone())
        .collect();
    on_store(&settings, async |store| {
        let mut stats = store.stats().await?;
        stats.instances = store.instances(&links).await?;
        Ok(stats)
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
    if let Some(instances) = &stats.instances {
        out.push_str(&format!("instances running: {}\n", instances.len()));
        for instance in instances {
            let since = iso8601_utc(instance.since.saturating_mul(1000));
            let holds = if instance.holds.is_empty() {
                "-".to_owned()
            } else {
                instance.holds.join(", ")
            };
            out.push_str(&format!(
                "  {:<10} since {since}  from {:<15}  holds {holds}\n",
                instance.id, instance.address
            ));
        }
    }
    out
}
