//! [`ApnsSender`]: pushgate's [`Waker`] for APNs. The shared upstream HTTP client (HTTP/2
//! only: `h2` by ALPN on https, prior knowledge on http), one provider token for every
//! connection, and bounded retries, all inside one deadline per wake-up. What every send
//! shares (the method, the fixed headers, the payload) is prepared once; a send adds its
//! path, its token's `authorization`, and its expiration and collapse id.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use pushgate_core::{Clock, DeviceHash, PushService, SystemClock, WakeOutcome, WakeRequest, Waker};
use pushgate_upstream_http::{
    KeepAlive, RequestHead, RetryPolicy, TlsRoots, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse, UpstreamSettings, UpstreamSetupError, Versions, proxy_settings,
};
use tokio::time::{Instant, sleep, timeout_at};
use url::Url;

use crate::classify::{Blame, Verdict, classify_answer};
use crate::config::{ApnsConfig, ApnsConfigError};
use crate::payload::Payload;
use crate::provider_token::{ProviderToken, ProviderTokens};
use crate::signing_key::SigningKey;

const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json");
const PUSHGATE_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("pushgate/", env!("CARGO_PKG_VERSION")));
const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
/// The `service` label of the transport's metrics.
const SERVICE: &str = "apns";
/// The largest answer body read: Apple's are a reason and a timestamp.
const MAX_BODY_BYTES: usize = 4096;
/// How many characters of the device hash make the collapse id (as FCM's collapse key).
const COLLAPSE_ID_CHARS: usize = 6;

/// Why an [`ApnsSender`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ApnsSetupError {
    /// The settings or the key are unusable.
    #[error("{key}: {error}", key = .0.key(), error = .0)]
    Config(#[from] ApnsConfigError),
    /// The connections to APNs could not be set up (no usable root certificates, a bad
    /// `HTTPS_PROXY`).
    #[error("cannot set up the connections to APNs: {0}")]
    Upstream(#[source] UpstreamSetupError),
}

/// What a sender is built with beside its settings.
#[derive(Clone)]
pub struct SenderOptions {
    /// The clock that dates provider tokens and expirations.
    pub clock: Arc<dyn Clock>,
    /// Which certificates APNs may present (a test fake's own CA).
    pub tls_roots: TlsRoots,
}

impl Default for SenderOptions {
    /// The wall clock; the platform's roots.
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            tls_roots: TlsRoots::Platform,
        }
    }
}

impl std::fmt::Debug for SenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderOptions").finish_non_exhaustive()
    }
}

/// Sends wake-ups through APNs with token-based authentication.
pub struct ApnsSender {
    upstream: Upstream,
    /// `POST {base}/3/device/` and the fixed header fields, prepared once.
    head: Arc<RequestHead>,
    payload: Bytes,
    /// `apns-expiration` is now plus this; `None` sends 0 (now or never).
    expiration: Option<Duration>,
    collapse: bool,
    deadline: Duration,
    tokens: ProviderTokens,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    topic: String,
}

impl std::fmt::Debug for ApnsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsSender")
            .field("upstream", &self.upstream)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ApnsSender {
    /// A sender for `config`'s app, signing with `key`. Checks the settings; sends nothing
    /// yet.
    pub fn new(config: &ApnsConfig, key: SigningKey) -> Result<Self, ApnsSetupError> {
        Self::with_options(config, key, SenderOptions::default())
    }

    /// Reads the key file named in `config` and builds the sender.
    pub fn from_config(config: &ApnsConfig) -> Result<Self, ApnsSetupError> {
        let key = config.check()?;
        Self::new(config, key)
    }

    /// [`new`](Self::new) with `options`.
    pub fn with_options(
        config: &ApnsConfig,
        key: SigningKey,
        options: SenderOptions,
    ) -> Result<Self, ApnsSetupError> {
        let SenderOptions { clock, tls_roots } = options;
        config.validate()?;
        let bad_url = || ApnsConfigError::BadApiUrl {
            url: config.base_url().to_owned(),
            reason: "does not make a valid request URL",
            sandbox: false,
        };
        let base = Url::parse(config.base_url()).map_err(|_| bad_url())?;
        let settings = UpstreamSettings {
            tls_roots,
            ..upstream_settings(config, &base)?
        };
        let upstream = Upstream::new(settings, SERVICE).map_err(ApnsSetupError::Upstream)?;
        let uri = Uri::try_from(format!("{}3/device/", base.as_str())).map_err(|_| bad_url())?;
        let head = upstream
            .prepare(request_head(config, uri))
            .map_err(|_| bad_url())?;
        crate::metrics::start();
        Ok(Self {
            upstream,
            head,
            payload: Payload::of(config).bytes().clone(),
            expiration: (!config.expiration.is_zero()).then_some(config.expiration),
            collapse: config.collapse,
            deadline: config.request_deadline,
            tokens: ProviderTokens::new(key, Arc::clone(&clock)),
            clock,
            retry: RetryPolicy::default(),
            topic: config.topic.clone(),
        })
    }

    /// Replaces the retry schedule (default: [`RetryPolicy::default`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Replaces how the HTTP/2 connections are kept alive. Only before the first wake-up.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.upstream.set_keep_alive(keep_alive);
        self
    }

    /// The topic (bundle id) pushes go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    async fn wake_before(
        &self,
        token: &str,
        device: Option<&DeviceHash>,
        deadline: Instant,
    ) -> WakeOutcome {
        let Ok(path) = PathAndQuery::try_from(format!("/3/device/{token}")) else {
            return WakeOutcome::Rejected("not an APNs device token".to_owned());
        };
        let mut attempts = 0;
        let mut resigned = false;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let provider_token = match self.tokens.get() {
                Ok(provider_token) => provider_token,
                Err(error) => return WakeOutcome::Transient(error.to_string()),
            };
            let request = self.request(path.clone(), &provider_token, device);
            let answer = self.upstream.send_prepared(request).await;
            match verdict(answer, attempt_started) {
                Verdict::Done(outcome) => return outcome,
                Verdict::ExpiredToken if !resigned && self.tokens.expired(&provider_token) => {
                    tracing::debug!("APNs called the provider token expired; signing a new one");
                    resigned = true;
                    attempts -= 1;
                }
                Verdict::ExpiredToken => {
                    return WakeOutcome::Transient(self.expired_reason(&provider_token, resigned));
                }
                Verdict::Retry {
                    reason,
                    retry_after,
                } => {
                    if attempts >= self.retry.max_attempts {
                        return WakeOutcome::Transient(reason);
                    }
                    let pause = retry_after.unwrap_or_else(|| self.retry.backoff(attempts));
                    // As for FCM: no retry without the time the last attempt took, nor in the
                    // deadline's last tenth.
                    let needed = attempt_started.elapsed().max(self.deadline / 10);
                    if Instant::now() + pause + needed >= deadline {
                        return WakeOutcome::Transient(format!("{reason}; no time left to retry"));
                    }
                    crate::metrics::retry();
                    sleep(pause).await;
                }
            }
        }
    }

    /// Why an `ExpiredProviderToken` answer is final.
    fn expired_reason(&self, used: &ProviderToken, resigned: bool) -> String {
        if resigned {
            "APNs refused a freshly signed provider token (ExpiredProviderToken): check the \
             system clock"
                .to_owned()
        } else {
            format!(
                "APNs calls a provider token signed {} s ago expired (ExpiredProviderToken): \
                 check the system clock",
                self.tokens.age_secs(used)
            )
        }
    }

    /// The POST to `path` with `provider_token`, the expiration and the collapse id.
    fn request(
        &self,
        path: PathAndQuery,
        provider_token: &ProviderToken,
        device: Option<&DeviceHash>,
    ) -> UpstreamRequest {
        let expiration = match self.expiration {
            Some(keep) => {
                let now = u64::try_from(self.clock.now() / 1000).unwrap_or(0);
                now.saturating_add(keep.as_secs())
            }
            None => 0,
        };
        let mut request = UpstreamRequest::new(Arc::clone(&self.head), self.payload.clone())
            .path(path)
            .header(AUTHORIZATION, provider_token.authorization.clone())
            .header(APNS_EXPIRATION, HeaderValue::from(expiration));
        if let Some(device) = device.filter(|_| self.collapse)
            && let Ok(collapse_id) = HeaderValue::from_str(&device.as_str()[..COLLAPSE_ID_CHARS])
        {
            request = request.header(APNS_COLLAPSE_ID, collapse_id);
        }
        request
    }
}

/// What every send shares.
fn request_head(config: &ApnsConfig, uri: Uri) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = Method::POST;
    *head.uri_mut() = uri;
    let headers = head.headers_mut();
    headers.insert(CONTENT_TYPE, JSON_CONTENT_TYPE);
    headers.insert(USER_AGENT, PUSHGATE_USER_AGENT);
    // validate() checked the topic's characters.
    if let Ok(topic) = HeaderValue::from_str(&config.topic) {
        headers.insert(APNS_TOPIC, topic);
    }
    let push_type = match config.payload {
        crate::PayloadKind::Alert => "alert",
        crate::PayloadKind::Silent => "background",
    };
    headers.insert(APNS_PUSH_TYPE, HeaderValue::from_static(push_type));
    headers.insert(
        APNS_PRIORITY,
        HeaderValue::from(u16::from(config.effective_priority())),
    );
    head
}

/// What one answer (or its absence) means; counted here, in a plain function, so that the
/// wake-up's future stays small.
fn verdict(answer: Result<UpstreamResponse, UpstreamError>, attempt_started: Instant) -> Verdict {
    let took = attempt_started.elapsed();
    let (verdict, blame) = match answer {
        Ok(answer) => classify_answer(answer.status.as_u16(), answer.retry_after, &answer.body),
        Err(UpstreamError::BodyTooLarge {
            status,
            retry_after,
            ..
        }) => classify_answer(status.as_u16(), retry_after, b""),
        Err(UpstreamError::BodyBroken { status, .. }) if status.is_success() => {
            (Verdict::Done(WakeOutcome::Accepted), Blame::None)
        }
        Err(failure) => {
            let outcome = if matches!(failure, UpstreamError::TimedOut) {
                "timeout"
            } else {
                "transport"
            };
            crate::metrics::answered(outcome, took);
            return Verdict::Retry {
                reason: format!("APNs {failure}"),
                retry_after: None,
            };
        }
    };
    crate::metrics::answered(blame.outcome_label(), took);
    match (&verdict, blame) {
        (Verdict::Done(WakeOutcome::Rejected(reason)), _) => {
            tracing::error!(%reason, "APNs refused a request pushgate should not have sent");
        }
        (Verdict::Done(WakeOutcome::Transient(reason)), Blame::Credentials | Blame::RateLimit) => {
            tracing::error!(%reason, "APNs refused pushgate's credentials or rate");
        }
        _ => {}
    }
    verdict
}

/// The transport's settings: HTTP/2 only, as APNs speaks nothing else.
fn upstream_settings(config: &ApnsConfig, base: &Url) -> Result<UpstreamSettings, ApnsSetupError> {
    let (proxy, proxy_environment) =
        proxy_settings(config.proxy.as_deref(), config.proxy_from_environment)
            .map_err(ApnsConfigError::BadProxy)?;
    Ok(UpstreamSettings {
        versions: Versions::Http2Only,
        proxy,
        proxy_environment,
        max_connections: config.max_connections,
        max_concurrent: config.max_concurrent,
        connect_timeout: config.request_deadline,
        request_timeout: None,
        max_body_bytes: MAX_BODY_BYTES,
        ..UpstreamSettings::new(base.clone())
    })
}

#[async_trait]
impl Waker for ApnsSender {
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome {
        let outcome = if request.service != PushService::Apns {
            WakeOutcome::Transient(format!(
                "the APNs sender cannot send to {}",
                request.service.as_str()
            ))
        } else if !PushService::Apns.accepts_token(request.token) {
            // Never sent: it would only be a 400 from Apple, or a path of the caller's making.
            WakeOutcome::Rejected("not an APNs device token".to_owned())
        } else {
            let deadline = Instant::now() + self.deadline;
            match timeout_at(
                deadline,
                self.wake_before(request.token, request.device, deadline),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    crate::metrics::request("timeout");
                    WakeOutcome::Transient(format!(
                        "no answer from APNs within {} ms",
                        self.deadline.as_millis()
                    ))
                }
            }
        };
        let label = match &outcome {
            WakeOutcome::Accepted => "accepted",
            WakeOutcome::TokenDead => "token_dead",
            WakeOutcome::Transient(_) => "transient",
            WakeOutcome::Rejected(_) => "rejected",
        };
        crate::metrics::wake(label);
        tracing::debug!(device = ?request.device, outcome = label, "APNs wake-up");
        outcome
    }
}
