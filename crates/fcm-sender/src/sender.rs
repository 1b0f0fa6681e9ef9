//! [`FcmSender`]: pushgate's [`Waker`] for FCM HTTP v1. The shared upstream HTTP client
//! (`pushgate-upstream-http`: a few HTTP/2 connections, by ALPN on https, with prior knowledge
//! on http; a limit on requests in flight), one cached OAuth2 token, and bounded retries, all
//! inside one deadline per wake-up so the publish IQ is never answered late. What every send
//! shares (the URI, the fixed headers) is prepared once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, Uri};
use pushgate_core::{DeviceHash, PushService, WakeOutcome, WakeRequest, Waker};
use pushgate_upstream_http::{
    KeepAlive, RequestHead, RetryPolicy, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse, UpstreamSettings, UpstreamSetupError, Versions, proxy_settings,
};
use tokio::time::{Instant, sleep, timeout_at};
use url::Url;

use crate::access_token::{AccessToken, AccessTokens};
use crate::classify::{Verdict, classify_answer};
use crate::config::{AndroidPriority, FcmConfig, FcmConfigError};
use crate::grant::{GrantSigner, UnusableKey};
use crate::message::wake_message;
use crate::response_body::MAX_BODY_BYTES;
use crate::service_account::ServiceAccount;
use crate::token_client;

/// The `Content-Type` of every send.
const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json; charset=UTF-8");
/// The `User-Agent` of every send.
const PUSHGATE_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("pushgate/", env!("CARGO_PKG_VERSION")));
/// What the token endpoint's client sends too.
const ANY: HeaderValue = HeaderValue::from_static("*/*");
/// The `service` label of the transport's metrics.
const SERVICE: &str = "fcm";

/// Why an [`FcmSender`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FcmSetupError {
    /// The settings or the key file are unusable.
    #[error(transparent)]
    Config(#[from] FcmConfigError),
    /// The key parsed but cannot sign.
    #[error(transparent)]
    Key(#[from] UnusableKey),
    /// The HTTP client for the token endpoint could not be set up.
    #[error("cannot set up the HTTP client for FCM: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The connections to FCM could not be set up (e.g. no usable root certificates, a bad
    /// `HTTPS_PROXY`).
    #[error("cannot set up the connections to FCM: {0}")]
    Upstream(#[source] UpstreamSetupError),
}

/// Sends wake-ups through FCM HTTP v1 (docs/protocol.md A.2).
///
/// Sends to an `https://` API URL offer only `h2` by ALPN, as FCM speaks it, so every wake-up
/// is one stream on a shared connection. A connection carries as many at once as the server
/// allows (100 for FCM); another is opened only when every open one is full, up to
/// [`FcmConfig::max_connections`], and closed again after it carried nothing for a minute
/// (the first is kept). Connections are opened when first needed and opened anew when they
/// end. Sends to an `http://` URL (a local relay, a test fake) use HTTP/2 with prior
/// knowledge (h2c), falling back to HTTP/1.1 for a relay that speaks nothing else, or
/// HTTP/1.1 at once when [`FcmConfig::http2_prior_knowledge`] is off. Connections go through
/// [`FcmConfig::proxy`] or the environment's proxy. The OAuth2 token endpoint has a
/// general-purpose client of its own, since it is asked once an hour.
#[derive(Debug)]
pub struct FcmSender {
    upstream: Upstream,
    /// Parsed once, for [`send_url`](Self::send_url).
    send_url: Url,
    /// The method, URI and fixed header fields of every send, prepared once.
    head: Arc<RequestHead>,
    collapse: bool,
    priority: AndroidPriority,
    deadline: Duration,
    tokens: AccessTokens,
    retry: RetryPolicy,
}

impl FcmSender {
    /// A sender for `service_account`'s project with `config`'s settings; the OAuth2 token
    /// endpoint is the key's `token_uri`. Checks the settings; sends nothing yet.
    pub fn new(config: &FcmConfig, service_account: ServiceAccount) -> Result<Self, FcmSetupError> {
        config.validate()?;
        let signer = GrantSigner::new(&service_account)?;
        let bad_url = || FcmConfigError::BadApiUrl {
            url: config.api_url.clone(),
            reason: "does not make a valid send URL",
        };
        let send_url = config.send_url(&service_account.project_id);
        let send_url = Url::parse(&send_url).map_err(|_| bad_url())?;
        let uri = Uri::try_from(send_url.as_str()).map_err(|_| bad_url())?;
        let http = token_client::client(config).map_err(FcmSetupError::HttpClient)?;
        let upstream = Upstream::new(upstream_settings(config, &send_url)?, SERVICE)
            .map_err(FcmSetupError::Upstream)?;
        let head = upstream.prepare(request_head(uri)).map_err(|_| bad_url())?;
        let tokens = AccessTokens::new(signer, service_account.token_uri.clone(), http);
        crate::metrics::start();
        Ok(Self {
            upstream,
            send_url,
            head,
            collapse: config.collapse,
            priority: config.priority,
            deadline: config.request_deadline,
            tokens,
            retry: RetryPolicy::default(),
        })
    }

    /// Reads the key file named in `config` and builds the sender.
    pub fn from_config(config: &FcmConfig) -> Result<Self, FcmSetupError> {
        let service_account = config.check()?;
        Self::new(config, service_account)
    }

    /// Replaces the retry schedule (default: [`RetryPolicy::default`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Replaces how the HTTP/2 connections are kept alive (default:
    /// [`KeepAlive::default`]). Only before the first wake-up.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.upstream.set_keep_alive(keep_alive);
        self
    }

    /// Replaces how long an HTTP/2 connection beyond the first may carry nothing before it is
    /// closed (default one minute). Only before the first wake-up.
    pub fn with_idle_connection_timeout(mut self, idle_timeout: Duration) -> Self {
        self.upstream.set_idle_timeout(idle_timeout);
        self
    }

    /// Refreshes the access token once less than `margin` of its life is left (default five
    /// minutes).
    pub fn with_token_refresh_margin(mut self, margin: Duration) -> Self {
        self.tokens.set_refresh_margin(margin);
        self
    }

    /// The URL wake-ups are posted to.
    pub fn send_url(&self) -> &str {
        self.send_url.as_str()
    }

    async fn wake_before(&self, request: WakeRequest<'_>, deadline: Instant) -> WakeOutcome {
        let body = Bytes::from(wake_message(
            request.token,
            request.device,
            self.collapse,
            self.priority,
        ));
        let mut attempts = 0;
        let mut bearer_refreshed = false;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let token = match self.tokens.get(deadline).await {
                Ok(token) => token,
                Err(error) => return WakeOutcome::Transient(error.to_string()),
            };
            // Waiting for a slot in the upstream's limit counts against the deadline like
            // everything else.
            let answer = self
                .upstream
                .send_prepared(self.request(&token, &body))
                .await;
            let verdict = verdict(
                answer,
                &[request.token, request.device.map_or("", DeviceHash::as_str)],
                attempt_started,
            );
            match verdict {
                Verdict::Done(outcome) => return outcome,
                Verdict::RefreshBearer if !bearer_refreshed => {
                    // The token expired early or was revoked: one fresh token, one more try.
                    tracing::debug!("FCM refused the OAuth2 token; fetching a new one");
                    self.tokens.invalidate(&token);
                    bearer_refreshed = true;
                    attempts -= 1;
                }
                Verdict::RefreshBearer => {
                    return WakeOutcome::Transient(
                        "FCM refused a freshly fetched OAuth2 token (HTTP 401)".to_owned(),
                    );
                }
                Verdict::Retry {
                    reason,
                    retry_after,
                } => {
                    if attempts >= self.retry.max_attempts {
                        return WakeOutcome::Transient(reason);
                    }
                    let pause = retry_after.unwrap_or_else(|| self.retry.backoff(attempts));
                    // A retry must have time to be answered: none is started with less left
                    // than the attempt that just failed took, nor in the last tenth of the
                    // deadline, where it would only end in the deadline itself.
                    let needed = attempt_started.elapsed().max(self.deadline / 10);
                    if Instant::now() + pause + needed >= deadline {
                        return WakeOutcome::Transient(format!("{reason}; no time left to retry"));
                    }
                    tracing::debug!(device = ?request.device, %reason, ?pause, "retrying an FCM send");
                    crate::metrics::retry();
                    sleep(pause).await;
                }
            }
        }
    }

    /// The POST of `body` with `token`: the prepared head, the token's `Authorization`.
    fn request(&self, token: &AccessToken, body: &Bytes) -> UpstreamRequest {
        UpstreamRequest::new(Arc::clone(&self.head), body.clone())
            .header(AUTHORIZATION, token.authorization().clone())
    }
}

/// What every send shares; the upstream adds `Content-Length`, each send its `Authorization`.
fn request_head(uri: Uri) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = Method::POST;
    *head.uri_mut() = uri;
    let headers = head.headers_mut();
    headers.insert(CONTENT_TYPE, JSON_CONTENT_TYPE);
    headers.insert(USER_AGENT, PUSHGATE_USER_AGENT);
    headers.insert(ACCEPT, ANY);
    head
}

/// What one answer (or its absence) means. `secrets` (the push token, the device hash) are
/// cut out of any text kept from the body.
fn verdict(
    answer: Result<UpstreamResponse, UpstreamError>,
    secrets: &[&str],
    attempt_started: Instant,
) -> Verdict {
    // Counted here, in a plain function: the wake-up's future stays small.
    crate::metrics::answered(&answer, attempt_started.elapsed());
    match answer {
        Ok(answer) => classify_answer(
            answer.status.as_u16(),
            answer.retry_after,
            &answer.body,
            secrets,
        ),
        // The status line is enough to classify; the detail is lost.
        Err(UpstreamError::BodyTooLarge {
            status,
            retry_after,
            ..
        }) => classify_answer(status.as_u16(), retry_after, b"", secrets),
        Err(UpstreamError::BodyBroken { status, .. }) if status.is_success() => {
            Verdict::Done(WakeOutcome::Accepted)
        }
        Err(failure) => Verdict::Retry {
            reason: format!("FCM {failure}"),
            retry_after: None,
        },
    }
}

/// The transport's settings from FCM's: only `h2` by ALPN on https, as FCM speaks it; h2c
/// first on http, unless prior knowledge is off.
fn upstream_settings(
    config: &FcmConfig,
    send_url: &Url,
) -> Result<UpstreamSettings, FcmSetupError> {
    let versions = if send_url.scheme() == "https" {
        Versions::Http2Only
    } else if config.http2_prior_knowledge {
        Versions::Negotiate
    } else {
        Versions::Http1Only
    };
    // validate() has checked the proxy.
    let (proxy, proxy_environment) =
        proxy_settings(config.proxy.as_deref(), config.proxy_from_environment)
            .map_err(FcmConfigError::BadProxy)?;
    Ok(UpstreamSettings {
        versions,
        proxy,
        proxy_environment,
        max_connections: config.max_connections,
        max_concurrent: config.max_concurrent,
        connect_timeout: config.request_deadline,
        // The wake-up's own deadline, over every try, bounds each request.
        request_timeout: None,
        max_body_bytes: MAX_BODY_BYTES,
        ..UpstreamSettings::new(send_url.clone())
    })
}

#[async_trait]
impl Waker for FcmSender {
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome {
        let outcome = if request.service == PushService::Fcm {
            let deadline = Instant::now() + self.deadline;
            match timeout_at(deadline, self.wake_before(request, deadline)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The deadline cut off the request on the wire (a retry is never started
                    // without time left for it).
                    crate::metrics::request("timeout");
                    WakeOutcome::Transient(format!(
                        "no answer from FCM within {} ms",
                        self.deadline.as_millis()
                    ))
                }
            }
        } else {
            WakeOutcome::Transient(format!(
                "the FCM sender cannot send to {}",
                request.service.as_str()
            ))
        };
        let label = match &outcome {
            WakeOutcome::Accepted => "accepted",
            WakeOutcome::TokenDead => "token_dead",
            WakeOutcome::Transient(_) => "transient",
            WakeOutcome::Rejected(_) => "rejected",
        };
        crate::metrics::wake(label);
        match &outcome {
            WakeOutcome::Transient(reason) | WakeOutcome::Rejected(reason) => {
                // The app server logs it at info, with the publish's trace id.
                tracing::debug!(device = ?request.device, outcome = label, %reason, "FCM wake-up not sent");
            }
            _ => tracing::debug!(device = ?request.device, outcome = label, "FCM wake-up"),
        }
        outcome
    }
}
