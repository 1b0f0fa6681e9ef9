//! `pushgate test-push`: one push, hop by hop, to see where a delivery stops.
//!
//! - `--node NODE --domain DOMAIN`: the XEP-0357 registration the user's server publishes
//!   to; the wake-up goes through the configured FCM or APNs sender of its service (of the
//!   default app, or of `--app`), as a publish would send it, and a token the service calls
//!   dead is marked dead as `serve` marks it.
//! - `--endpoint URL`: a UnifiedPush endpoint; the token is opened here, then a short test
//!   message is POSTed to the endpoint through the running pushgate's listener (the URL
//!   itself, or `--via` straight to the listener when the public URL is behind a proxy). No
//!   second component connection is opened: the XMPP server would refuse it or drop the
//!   running one.
//!
//! Nothing printed names a token, secret or JID.

use std::process::ExitCode;
use std::time::Duration;

use pushgate_apns::ApnsSender;
use pushgate_core::{
    Clock as _, EndpointId, PushService, RegistrationStore as _, RevocationStore as _, SystemClock,
    WakeOutcome, WakeRequest, Waker,
};
use pushgate_fcm::FcmSender;
use pushgate_store::SqlStore;
use serde::Serialize;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::settings::{Settings, SettingsFile};

/// What the test message carries (the receiving app cannot decrypt it and drops it).
const TEST_BODY: &[u8] = b"pushgate test-push";

/// The arguments of `test-push`.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["node", "endpoint"])))]
pub struct TestPushArgs {
    /// The node of an XEP-0357 registration (with `--domain`).
    #[arg(long, requires = "domain")]
    pub node: Option<String>,
    /// The account domain the registration belongs to.
    #[arg(long)]
    pub domain: Option<String>,
    /// The `[[app]]` whose credentials wake it (the component's `app`); default: the
    /// top-level `[fcm]` and `[apns]`.
    #[arg(long, requires = "node")]
    pub app: Option<String>,
    /// A UnifiedPush endpoint URL (`{public_url}/push/{token}`).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Send the POST to this base URL instead of the endpoint's own
    /// (e.g. `http://127.0.0.1:8080`, the listener behind the proxy).
    #[arg(long, value_name = "URL", requires = "endpoint")]
    pub via: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One hop and what became of the push there.
#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    /// Which hop.
    pub hop: &'static str,
    /// Whether the push got past it.
    pub ok: bool,
    /// What happened, without a token, secret or JID.
    pub detail: String,
}

/// Runs `test-push`: 0 when every hop succeeded, 1 when one failed, 2 for unusable settings
/// or arguments.
pub fn run(file: &SettingsFile, args: &TestPushArgs) -> ExitCode {
    let settings = match Settings::load(file) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pushgate: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushgate: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let hops = runtime.block_on(async {
        match (&args.node, &args.endpoint) {
            (Some(node), _) => {
                let domain = args.domain.as_deref().unwrap_or_default();
                wake(&settings, args.app.as_deref(), domain, node).await
            }
            (None, Some(endpoint)) => push(&settings, endpoint, args.via.as_deref()).await,
            (None, None) => Vec::new(),
        }
    });
    if args.json {
        let all_ok = hops.iter().all(|hop| hop.ok);
        println!(
            "{}",
            serde_json::json!({ "ok": all_ok && !hops.is_empty(), "hops": hops })
        );
    } else {
        for hop in &hops {
            println!(
                "{:<4} {:<14} {}",
                if hop.ok { "ok" } else { "FAIL" },
                hop.hop,
                hop.detail
            );
        }
    }
    if !hops.is_empty() && hops.iter().all(|hop| hop.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

fn hop(hop: &'static str, ok: bool, detail: impl Into<String>) -> Hop {
    Hop {
        hop,
        ok,
        detail: detail.into(),
    }
}

/// The registration, then FCM or APNs.
async fn wake(settings: &Settings, app: Option<&str>, domain: &str, node: &str) -> Vec<Hop> {
    let mut hops = Vec::new();
    let store = match SqlStore::connect(&settings.database.store_config()).await {
        Ok(store) => store,
        Err(error) => return vec![hop("database", false, error.to_string())],
    };
    let registration = match store.find_registration(domain, node).await {
        Ok(Some(registration)) => registration,
        Ok(None) => {
            return vec![hop(
                "registration",
                false,
                format!(
                    "no registration with this node for {domain}: a publish would be answered \
                     item-not-found"
                ),
            )];
        }
        Err(error) => return vec![hop("registration", false, error.to_string())],
    };
    hops.push(hop(
        "registration",
        true,
        format!(
            "{} device {}…{}",
            registration.service.as_str(),
            registration.device.as_str().get(..6).unwrap_or_default(),
            if registration.dead_since.is_some() {
                ", token called dead before"
            } else {
                ""
            }
        ),
    ));
    let service = registration.service;
    let sender = match sender(settings, app, service) {
        Ok(sender) => sender,
        Err(detail) => {
            hops.push(hop(service.as_str(), false, detail));
            return hops;
        }
    };
    let outcome = sender
        .wake(WakeRequest {
            service: registration.service,
            token: &registration.token,
            device: Some(&registration.device),
        })
        .await;
    let (ok, detail) = match outcome {
        WakeOutcome::Accepted => (
            true,
            format!(
                "accepted: {} will wake the device",
                service.as_str().to_uppercase()
            ),
        ),
        WakeOutcome::TokenDead => {
            let marked = store
                .mark_token_dead(
                    registration.service,
                    &registration.device,
                    &registration.token,
                    SystemClock.now(),
                )
                .await;
            let note = if matches!(marked, Ok(true)) {
                "; marked dead"
            } else {
                ""
            };
            (
                false,
                format!("the token is dead (the app was uninstalled or its data cleared){note}"),
            )
        }
        WakeOutcome::Transient(reason) => (false, format!("not sent now: {reason}")),
        WakeOutcome::Rejected(reason) => (false, format!("refused: {reason}")),
    };
    hops.push(hop(service.as_str(), ok, detail));
    hops
}

/// The sender of `service` for `app` (the default app without one), or why there is none.
fn sender(
    settings: &Settings,
    app: Option<&str>,
    service: PushService,
) -> Result<Box<dyn Waker>, String> {
    let (fcm, apns) = match app {
        None => (settings.fcm.as_ref(), settings.apns.as_ref()),
        Some(name) => {
            let app = settings
                .app
                .iter()
                .find(|app| app.name == name)
                .ok_or_else(|| format!("no [[app]] named {name:?}"))?;
            (app.fcm.as_ref(), app.apns.as_ref())
        }
    };
    let missing = |section: &str| {
        format!("no {section} settings: publishes are answered recipient-unavailable (wait)")
    };
    match service {
        PushService::Fcm => {
            let config = fcm.ok_or_else(|| missing("FCM"))?;
            let sender = FcmSender::from_config(config).map_err(|error| error.to_string())?;
            Ok(Box::new(sender))
        }
        PushService::Apns => {
            let config = apns.ok_or_else(|| missing("APNs"))?;
            let sender = ApnsSender::from_config(config).map_err(|error| error.to_string())?;
            Ok(Box::new(sender))
        }
    }
}

/// The endpoint's token, then the POST.
async fn push(settings: &Settings, endpoint: &str, via: Option<&str>) -> Vec<Hop> {
    let mut hops = Vec::new();
    let token = super::endpoint::token_of(endpoint);
    let keys = match settings.unified_push.endpoint_keys() {
        Ok(keys) => keys,
        Err(error) => return vec![hop("token", false, format!("[unified_push] keys: {error}"))],
    };
    let now = SystemClock.now();
    match keys.inspect(token) {
        Ok((index, claims)) if claims.expires_at > now => hops.push(hop(
            "token",
            true,
            format!(
                "opened by keys[{index}], valid until {}",
                pushgate_core::unified_push::iso8601_utc(claims.expires_at)
            ),
        )),
        Ok(_) => return vec![hop("token", false, "expired: POSTs get 404")],
        Err(error) => return vec![hop("token", false, format!("{error}: not one of ours"))],
    }
    if let Ok(store) = SqlStore::connect(&settings.database.store_config()).await
        && let Ok(true) = store
            .is_endpoint_revoked(&EndpointId::of_token(token), now)
            .await
    {
        hops.push(hop("revocation", false, "revoked: POSTs get 404"));
        return hops;
    }
    let url = match via {
        Some(base) => format!("{}/push/{token}", base.trim_end_matches('/')),
        None => endpoint.trim().to_owned(),
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            hops.push(hop("post", false, error.to_string()));
            return hops;
        }
    };
    let answer = client
        .post(&url)
        .header("TTL", "60")
        .header("Content-Encoding", "aes128gcm")
        .header("Urgency", "normal")
        .body(TEST_BODY)
        .send()
        .await;
    let (ok, detail) = match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let meaning = match status {
                201 => "accepted: delivered to the client, or kept until it is reachable",
                404 => "unknown, expired or revoked endpoint",
                413 => "body too large",
                429 => "rate-limited or the client's storage is full",
                503 => "the service cannot take it now",
                _ => "unexpected answer",
            };
            (status == 201, format!("HTTP {status}: {meaning}"))
        }
        Err(error) => (
            false,
            format!(
                "no answer from the listener ({}): {}",
                if error.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                },
                redact_token(&error.to_string(), token)
            ),
        ),
    };
    hops.push(hop("post", ok, detail));
    hops
}

/// An error text with the token cut out (reqwest names the URL).
fn redact_token(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    text.replace(token, "{token}")
}
