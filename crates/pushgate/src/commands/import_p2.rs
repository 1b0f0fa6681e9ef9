//! `pushgate import-p2 --from mysql://…`: keeps p2's registrations so that switching from p2
//! costs no phone its notifications.
//!
//! Conversations registers again only when it binds, and a sleeping phone binds only after a
//! push wakes it. Without p2's rows every publish for an existing device would get
//! `item-not-found` after the switch, and the user's server drops the registration (ejabberd
//! at once, Prosody after 16 errors): the phone would never be woken again. So each row of
//! p2's `target` table is stored as a pushgate registration with its device, domain, token,
//! node and secret exactly as p2 kept them, and the next publish wakes the device.
//!
//! The command reads p2's database and writes only pushgate's own (the one `[database]`
//! names, migrated first if needed). It is idempotent: a (service, device) already stored is
//! left as it is, since it may be newer than p2's row. It never prints a token, secret, node
//! or JID, nor the source URL's password.

use std::collections::BTreeMap;
use std::process::ExitCode;

use pushgate_core::{Clock as _, PushService, Store as _, StoreError, SystemClock};
use pushgate_store::import::p2::{P2Source, P2SourceError};
use pushgate_store::{SqlStore, StoreSetupError};
use serde::Serialize;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::settings::{Settings, SettingsError, SettingsFile};

/// The arguments of `import-p2`.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportP2Args {
    /// p2's database: `mysql://user:password@host:3306/database` (`mariadb://` works too).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The skip key of a row pushgate's database refused although it looked well formed.
const REFUSED_BY_DATABASE: &str = "refused_by_database";

/// Why the import did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// p2's database: a wrong URL, or it cannot be reached or read.
    #[error(transparent)]
    Source(#[from] P2SourceError),
    /// pushgate's own database could not be opened or migrated.
    #[error("cannot open pushgate's database: {0}")]
    Store(#[from] StoreSetupError),
    /// pushgate's own database stopped answering during the import.
    #[error("pushgate's database stopped answering: {0}")]
    StoreLost(StoreError),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl ImportError {
    /// 2 for what the operator must fix in the settings or the arguments, 1 for a database
    /// that cannot be reached (running again later may succeed).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Settings(_) => EXIT_CONFIG,
            Self::Source(source) if source.is_bad_url() => EXIT_CONFIG,
            Self::Source(_) | Self::Store(_) | Self::StoreLost(_) | Self::Runtime(_) => {
                EXIT_RUNTIME
            }
        }
    }
}

/// What an import did. Counts only: no row's values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// p2's database, its password replaced by `***` (empty until connected).
    pub source: String,
    /// Rows read from p2's `target` table.
    pub read: u64,
    /// Rows stored as new registrations.
    pub imported: u64,
    /// Of those, APNs registrations: woken through `[apns]`; while that is not set, a publish
    /// to them is answered `wait` (the user's server keeps the registration).
    pub imported_apns: u64,
    /// Rows whose (service, device) pushgate already had; left as they are.
    pub already_present: u64,
    /// Rows not imported, by reason key (`channel_registration`, `null_token`,
    /// `malformed_node`, …).
    pub skipped: BTreeMap<String, u64>,
    /// Whether every row was read and handled.
    pub complete: bool,
    /// Why the import stopped, when it did not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The human description of each skip key.
    #[serde(skip)]
    skip_descriptions: BTreeMap<String, String>,
}

impl ImportReport {
    fn skip(&mut self, key: String, description: String) {
        *self.skipped.entry(key.clone()).or_default() += 1;
        self.skip_descriptions.entry(key).or_insert(description);
    }

    /// The rows skipped, all reasons together.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The summary as an operator reads it.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "import-p2: read {} rows of p2's target table from {}\n",
            self.read,
            if self.source.is_empty() {
                "(not connected)"
            } else {
                &self.source
            }
        );
        text.push_str(&format!("  imported:        {}\n", self.imported));
        if self.imported_apns > 0 {
            text.push_str(&format!(
                "    of which APNs: {} (woken through [apns]; while it is not set, publishes to \
                 them are answered `wait` and the servers keep the registrations)\n",
                self.imported_apns
            ));
        }
        text.push_str(&format!("  already present: {}\n", self.already_present));
        text.push_str(&format!("  skipped:         {}\n", self.skipped_total()));
        for (key, rows) in &self.skipped {
            let description = self
                .skip_descriptions
                .get(key)
                .map_or(key.as_str(), String::as_str);
            text.push_str(&format!("    {rows:>6}  {description} ({key})\n"));
        }
        if !self.complete {
            text.push_str("  the import did not complete; running it again is safe\n");
        }
        text
    }
}

/// Runs `import-p2` and gives the exit code: 0 when it ran (skipped rows included), 2 for
/// unusable settings or arguments, 1 when p2's or pushgate's database cannot be reached.
pub fn run(file: &SettingsFile, args: &ImportP2Args) -> ExitCode {
    let mut report = ImportReport::default();
    let outcome = Settings::load(file)
        .map_err(ImportError::from)
        .and_then(|settings| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ImportError::Runtime)?;
            runtime.block_on(import(&settings, &args.from, &mut report))
        });
    let code = match &outcome {
        Ok(()) => {
            report.complete = true;
            ExitCode::SUCCESS
        }
        Err(error) => {
            report.error = Some(error.to_string());
            eprintln!("pushgate: {error}");
            ExitCode::from(error.exit_code())
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("pushgate: cannot write the summary: {error}"),
        }
    } else if outcome.is_ok() || !report.source.is_empty() {
        // A failure before p2's database was reached has nothing to count.
        print!("{}", report.to_text());
    }
    code
}

/// Reads every row of p2's `target` table and stores what can be kept, counting into
/// `report` as it goes (so a failure part-way still says how far it got).
pub async fn import(
    settings: &Settings,
    from: &str,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    // The source first: a wrong URL is reported before pushgate's database is touched.
    let mut source = P2Source::connect(from).await?;
    report.source = source.redacted_url().to_owned();
    let store = match SqlStore::connect(&settings.database.store_config()).await {
        Ok(store) => store,
        Err(error) => {
            source.close().await;
            return Err(error.into());
        }
    };
    let outcome = copy_rows(&mut source, &store, report).await;
    source.close().await;
    store.close().await;
    outcome
}

async fn copy_rows(
    source: &mut P2Source,
    store: &SqlStore,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let clock = SystemClock;
    loop {
        let page = source.next_page().await?;
        if page.is_empty() {
            return Ok(());
        }
        for row in page {
            report.read += 1;
            let registration = match row.to_registration(clock.now()) {
                Ok(registration) => registration,
                Err(reason) => {
                    report.skip(reason.key(), reason.to_string());
                    continue;
                }
            };
            match store.insert_registration_if_absent(&registration).await {
                Ok(true) => {
                    report.imported += 1;
                    if registration.service == PushService::Apns {
                        report.imported_apns += 1;
                    }
                }
                Ok(false) => report.already_present += 1,
                // The row was refused although it passed the checks (a constraint of
                // pushgate's schema, say): skip it, unless the database is gone altogether,
                // when every later row would fail the same way.
                Err(error) => match store.ping().await {
                    Ok(()) => {
                        tracing::debug!(%error, "a p2 row was refused by pushgate's database");
                        report.skip(
                            REFUSED_BY_DATABASE.to_owned(),
                            "refused by pushgate's database".to_owned(),
                        );
                    }
                    Err(_) => return Err(ImportError::StoreLost(error)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_summary_names_every_skip_reason_and_no_value() {
        let mut report = ImportReport {
            source: "mysql://p2:***@db/p2".to_owned(),
            read: 4,
            imported: 2,
            imported_apns: 1,
            already_present: 1,
            complete: true,
            ..ImportReport::default()
        };
        report.skip(
            "channel_registration".to_owned(),
            "channel (MUC) registration".to_owned(),
        );
        let text = report.to_text();
        assert!(text.contains("imported:        2"), "{text}");
        assert!(text.contains("of which APNs: 1"), "{text}");
        assert!(text.contains("already present: 1"), "{text}");
        assert!(
            text.contains("1  channel (MUC) registration (channel_registration)"),
            "{text}"
        );
        let json = serde_json::to_value(&report).ok();
        assert_eq!(
            json.as_ref().map(|json| json["skipped"].clone()),
            Some(serde_json::json!({ "channel_registration": 1 }))
        );
    }
}
