//! [`FcmSender`]: pushgate's [`Waker`] for FCM HTTP v1. A few HTTP/2 connections (by ALPN on
//! https, with prior knowledge on http), one cached OAuth2 token, a global limit on requests in
//! flight, and bounded retries, all inside one deadline per wake-up so the publish IQ is never
//! answered late. What every send shares (the URI, the headers) is prepared once.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Uri;
use pushgate_core::{PushService, WakeOutcome, WakeRequest, Waker};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout_at};
use url::Url;

use crate::access_token::{AccessToken, AccessTokens};
use crate::classify::{Verdict, classify_answer};
use crate::config::{AndroidPriority, FcmConfig, FcmConfigError};
use crate::connect::{Endpoint, KeepAlive};
use crate::connection::FcmConnection;
use crate::exchange::RequestHead;
use crate::grant::{GrantSigner, UnusableKey};
use crate::http1::{self, Http1Relay};
use crate::message::wake_message;
use crate::response_body::{Answer, BodyError};
use crate::retry::RetryPolicy;
use crate::service_account::ServiceAccount;
use crate::tls;

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
    /// TLS towards FCM could not be set up (e.g. no usable root certificates).
    #[error("cannot set up TLS for FCM: {0}")]
    Tls(#[source] tokio_rustls::rustls::Error),
}

/// How sends reach FCM.
#[derive(Debug)]
enum Route {
    /// Streams on pooled HTTP/2 connections: FCM itself, or an h2c relay.
    Http2(FcmConnection),
    /// An HTTP/1.1-only relay.
    Http1(Http1Relay),
}

/// Sends wake-ups through FCM HTTP v1 (docs/protocol.md A.2).
///
/// Sends to an `https://` API URL offer only `h2` by ALPN, as FCM speaks it, so every wake-up
/// is one stream on a shared connection. A connection carries as many at once as the server
/// allows (100 for FCM); another is opened only when every open one is full, up to
/// [`FcmConfig::max_connections`], and closed again after it carried nothing for a minute
/// (the first is kept). Connections are opened when first needed and opened anew when they
/// end. Sends to an `http://` URL (a local relay, a test fake) use HTTP/2 with prior
/// knowledge (h2c) unless [`FcmConfig::http2_prior_knowledge`] is off. The OAuth2 token
/// endpoint has a general-purpose client of its own, since it is asked once an hour.
#[derive(Debug)]
pub struct FcmSender {
    route: Route,
    /// Parsed once, for [`send_url`](Self::send_url).
    send_url: Url,
    collapse: bool,
    priority: AndroidPriority,
    deadline: Duration,
    permits: Semaphore,
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
        let http = http1::client(config).map_err(FcmSetupError::HttpClient)?;
        let route = if send_url.scheme() == "https" || config.uses_h2c() {
            let tls = if send_url.scheme() == "https" {
                Some(tls::connector().map_err(FcmSetupError::Tls)?)
            } else {
                None
            };
            let endpoint =
                Endpoint::new(&send_url, tls, config.request_deadline).ok_or_else(bad_url)?;
            let uri = Uri::try_from(send_url.as_str()).map_err(|_| bad_url())?;
            Route::Http2(FcmConnection::new(
                endpoint,
                config.request_deadline,
                config.max_connections,
                RequestHead::new(uri),
            ))
        } else {
            Route::Http1(Http1Relay {
                client: http.clone(),
                url: send_url.clone(),
            })
        };
        let tokens = AccessTokens::new(signer, service_account.token_uri.clone(), http);
        Ok(Self {
            route,
            send_url,
            collapse: config.collapse,
            priority: config.priority,
            deadline: config.request_deadline,
            permits: Semaphore::new(config.max_concurrent.min(Semaphore::MAX_PERMITS)),
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
    /// [`KeepAlive::default`]); it applies to connections opened from now on.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        if let Route::Http2(connection) = &mut self.route {
            connection.set_keep_alive(keep_alive);
        }
        self
    }

    /// Replaces how long an HTTP/2 connection beyond the first may carry nothing before it is
    /// closed (default one minute).
    pub fn with_idle_connection_timeout(mut self, idle_timeout: Duration) -> Self {
        if let Route::Http2(connection) = &mut self.route {
            connection.set_idle_timeout(idle_timeout);
        }
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
        let secrets = [request.token, request.device.as_str()];
        let mut attempts = 0;
        let mut bearer_refreshed = false;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let token = match self.tokens.get(deadline).await {
                Ok(token) => token,
                Err(error) => return WakeOutcome::Transient(error.to_string()),
            };
            let verdict = {
                // Waiting for a permit counts against the deadline like everything else.
                let Ok(_permit) = self.permits.acquire().await else {
                    return WakeOutcome::Transient("the FCM sender is shut down".to_owned());
                };
                self.send_once(&token, &body, &secrets).await
            };
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
                    metrics::counter!("pushgate_fcm_retries_total").increment(1);
                    sleep(pause).await;
                }
            }
        }
    }

    /// One POST to FCM, classified.
    async fn send_once(&self, token: &AccessToken, body: &Bytes, secrets: &[&str]) -> Verdict {
        let sent = match &self.route {
            Route::Http2(connection) => connection.post(token.authorization(), body).await,
            // Boxed: the rare route should not make every send's future larger.
            Route::Http1(relay) => Box::pin(relay.post(token.authorization(), body)).await,
        };
        let Answer {
            status,
            retry_after,
            body,
        } = match sent {
            Ok(answer) => answer,
            Err(failure) => {
                return Verdict::Retry {
                    reason: format!("FCM {failure}"),
                    retry_after: None,
                };
            }
        };
        let retry_after = retry_after.as_ref().and_then(|value| value.to_str().ok());
        match body {
            Ok(body) => classify_answer(status, retry_after, &body, secrets),
            // The status line is enough to classify; the detail is lost.
            Err(BodyError::TooLarge) => classify_answer(status, retry_after, b"", secrets),
            Err(BodyError::Transport(_)) if (200..300).contains(&status) => {
                Verdict::Done(WakeOutcome::Accepted)
            }
            Err(BodyError::Transport(failure)) => Verdict::Retry {
                reason: format!("FCM HTTP {status}, then {failure}"),
                retry_after: None,
            },
        }
    }
}

#[async_trait]
impl Waker for FcmSender {
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome {
        let outcome = if request.service == PushService::Fcm {
            let deadline = Instant::now() + self.deadline;
            match timeout_at(deadline, self.wake_before(request, deadline)).await {
                Ok(outcome) => outcome,
                Err(_) => WakeOutcome::Transient(format!(
                    "no answer from FCM within {} ms",
                    self.deadline.as_millis()
                )),
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
        metrics::counter!("pushgate_fcm_wakes_total", "outcome" => label).increment(1);
        match &outcome {
            WakeOutcome::Transient(reason) | WakeOutcome::Rejected(reason) => {
                tracing::info!(device = ?request.device, outcome = label, %reason, "FCM wake-up not sent");
            }
            _ => tracing::debug!(device = ?request.device, outcome = label, "FCM wake-up"),
        }
        outcome
    }
}
