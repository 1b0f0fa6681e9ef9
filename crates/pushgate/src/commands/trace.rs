//! `pushgate trace`: the last deliveries of one XEP-0357 registration (`--node`) or one
//! UnifiedPush account (`--jid`, or `--endpoint`, whose token names it), as the running
//! pushgate recorded them. It asks over the metrics listener (`GET /trace`), which is never
//! the public one; the process hashes what it is given and keeps no JID or node.

use std::process::ExitCode;
use std::time::Duration;

use pushgate_core::trace::latency_text;
use serde::Deserialize;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::commands::endpoint::{EXIT_NOT_OURS, token_of};
use crate::settings::{Settings, SettingsFile};

/// The arguments of `trace`.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["node", "jid", "endpoint"])))]
pub struct TraceArgs {
    /// The node of an XEP-0357 registration.
    #[arg(long)]
    pub node: Option<String>,
    /// A UnifiedPush account's bare JID (`user@domain`).
    #[arg(long)]
    pub jid: Option<String>,
    /// A UnifiedPush endpoint URL or token: its account's deliveries.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The metrics listener to ask (default: `[metrics] listen`), e.g. `http://127.0.0.1:9090`.
    #[arg(long, value_name = "URL")]
    pub via: Option<String>,
    /// Print the events as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `GET /trace` answers, as read here.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct TraceAnswer {
    /// Oldest first.
    pub events: Vec<TracedEvent>,
}

/// One event as `GET /trace` serialises a `pushgate_core::trace::TraceEvent`.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct TracedEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// The hop.
    pub hop: String,
    /// Its outcome.
    pub outcome: String,
    /// Its latency in microseconds.
    pub latency_us: u32,
    /// The application's tag, for UnifiedPush.
    pub application: Option<String>,
    /// The delivery's trace id, as in the log.
    pub trace_id: String,
}

/// Runs `trace`: 0 with the events (none is not an error), 1 when the running pushgate
/// cannot be asked, 2 for unusable settings or arguments, 3 for an endpoint of another
/// service.
pub fn run(file: &SettingsFile, args: &TraceArgs) -> ExitCode {
    let settings = match Settings::load(file) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pushgate: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let base = match (&args.via, settings.metrics.listen) {
        (Some(via), _) => via.trim_end_matches('/').to_owned(),
        (None, Some(listen)) => format!("http://{listen}"),
        (None, None) => {
            eprintln!(
                "pushgate: [metrics] listen is not set; the running pushgate answers `trace` on that listener (or give --via)"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let query = match (&args.node, &args.jid, &args.endpoint) {
        (Some(node), _, _) => ("node", node.clone()),
        (None, Some(jid), _) => ("jid", jid.clone()),
        (None, None, Some(endpoint)) => match owner_of(&settings, endpoint) {
            Ok(owner) => ("jid", owner),
            Err(code) => return code,
        },
        (None, None, None) => return ExitCode::from(EXIT_CONFIG),
    };
    let answer = match ask(&base, query) {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("pushgate: cannot ask the running pushgate at {base}: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if args.json {
        println!("{}", serde_json::json!({ "events": answer.events }));
    } else {
        print_table(&answer.events);
    }
    ExitCode::SUCCESS
}

/// The bare JID an endpoint's token names.
fn owner_of(settings: &Settings, endpoint: &str) -> Result<String, ExitCode> {
    let keys = settings.unified_push.endpoint_keys().map_err(|error| {
        eprintln!("pushgate: unified_push.keys: {error}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let (_, claims) = keys.inspect(token_of(endpoint)).map_err(|_| {
        eprintln!("pushgate: no key of [unified_push] keys opens that endpoint");
        ExitCode::from(EXIT_NOT_OURS)
    })?;
    Ok(claims
        .owner
        .split_once('/')
        .map_or(claims.owner.as_str(), |(bare, _)| bare)
        .to_owned())
}

fn ask(base: &str, (name, value): (&str, String)) -> Result<TraceAnswer, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| error.to_string())?;
        let url = reqwest::Url::parse_with_params(&format!("{base}/trace"), [(name, &value)])
            .map_err(|error| format!("{base} is not a URL: {error}"))?;
        let answer = client
            .get(url)
            .send()
            .await
            // reqwest names the URL, which holds the JID or node asked about.
            .map_err(|error| error.without_url().to_string())?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = answer
            .bytes()
            .await
            .map_err(|error| error.without_url().to_string())?;
        serde_json::from_slice(&body).map_err(|error| format!("not a trace answer: {error}"))
    })
}

fn print_table(events: &[TracedEvent]) {
    if events.is_empty() {
        println!("no deliveries recorded (none since pushgate started, or evicted)");
        return;
    }
    println!(
        "{:<24} {:<24} {:<14} {:>12}  {:<8}  trace",
        "time (UTC)", "hop", "outcome", "latency", "app"
    );
    for event in events {
        println!(
            "{:<24} {:<24} {:<14} {:>12}  {:<8}  {}",
            utc(event.at),
            event.hop,
            event.outcome,
            latency_text(event.latency_us),
            event.application.as_deref().unwrap_or("-"),
            event.trace_id
        );
    }
}

/// `2026-12-04T21:03:20.123Z`.
fn utc(unix_millis: i64) -> String {
    let time =
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_millis).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(utc(1_796_000_000_123), "2026-11-30T00:53:20.123Z");
    }
}
