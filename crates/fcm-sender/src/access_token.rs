//! The OAuth2 access token FCM requests carry: fetched with the JWT bearer grant, cached, and
//! refreshed before it expires by one task while the others keep using the still-valid one.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::grant::{GrantSigner, JWT_BEARER_GRANT_TYPE};
use crate::response_body::{BodyError, read_capped, transport_failure};

/// What the token endpoint lends when it does not say how long (RFC 6749 §5.1 makes
/// `expires_in` only recommended); Google always sends it.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A bearer token and when it stops being usable.
#[derive(Clone)]
pub(crate) struct AccessToken {
    /// `Bearer {token}`, built once per token: every send clones it, which only counts a
    /// reference.
    authorization: HeaderValue,
    expires_at: Instant,
}

impl AccessToken {
    /// The value of the `Authorization` header, marked sensitive so no HTTP layer logs it.
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why no access token could be had. Never holds the token or the assertion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// The endpoint refused the grant (e.g. 400 `invalid_grant`: a revoked key, a clock off).
    #[error("the OAuth2 token endpoint refused the grant (HTTP {status}, {error})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth2 `error` code, or "no error code".
        error: String,
    },
    /// The endpoint could not be reached or broke off.
    #[error("the OAuth2 token endpoint failed: {0}")]
    Transport(&'static str),
    /// The endpoint answered 200 with something that is not a token.
    #[error("the OAuth2 token endpoint answered without a usable token: {0}")]
    BadAnswer(&'static str),
    /// No answer came in the time left.
    #[error("the OAuth2 token endpoint did not answer in time")]
    Timeout,
    /// The grant could not be signed.
    #[error("the OAuth2 grant could not be signed")]
    Signing,
}

/// The cache, guarded by a plain mutex that is never held across an `.await`.
#[derive(Default)]
struct Cache {
    token: Option<AccessToken>,
    /// How many fetches have ended, so a task that waited for another's fetch can tell.
    fetches_done: u64,
    /// The failure of the latest fetch, shared with the tasks that waited for it.
    last_failure: Option<TokenError>,
}

/// Mints, caches and refreshes the access token of one service account.
pub(crate) struct AccessTokens {
    signer: GrantSigner,
    token_uri: String,
    http: reqwest::Client,
    /// Refresh once less than this is left.
    refresh_margin: Duration,
    cache: Mutex<Cache>,
    /// Held by the one task that fetches, so callers never stampede the endpoint.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokens")
            .field("token_uri", &self.token_uri)
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub(crate) fn new(signer: GrantSigner, token_uri: String, http: reqwest::Client) -> Self {
        Self {
            signer,
            token_uri,
            http,
            refresh_margin: Duration::from_secs(300),
            cache: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn set_refresh_margin(&mut self, margin: Duration) {
        self.refresh_margin = margin;
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panicking holder could break halfway.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn usable(&self) -> Option<AccessToken> {
        let now = Instant::now();
        self.cache()
            .token
            .clone()
            .filter(|token| token.expires_at > now)
    }

    /// A token valid now, fetching one if needed; gives up at `deadline`.
    pub(crate) async fn get(&self, deadline: Instant) -> Result<AccessToken, TokenError> {
        match self.far_from_expiry() {
            Some(token) => Ok(token),
            // Boxed: the hourly path need not make every send's future larger.
            None => Box::pin(self.renew(deadline)).await,
        }
    }

    /// The cached token while more than the refresh margin of its life is left.
    fn far_from_expiry(&self) -> Option<AccessToken> {
        let now = Instant::now();
        self.cache()
            .token
            .clone()
            .filter(|token| token.expires_at.saturating_duration_since(now) > self.refresh_margin)
    }

    /// [`get`](Self::get) when the cached token is missing, expired or near expiry.
    async fn renew(&self, deadline: Instant) -> Result<AccessToken, TokenError> {
        let (cached, fetches_seen) = {
            let cache = self.cache();
            (cache.token.clone(), cache.fetches_done)
        };
        let now = Instant::now();
        if let Some(token) = cached.filter(|token| token.expires_at > now) {
            if token.expires_at.saturating_duration_since(now) > self.refresh_margin {
                return Ok(token);
            }
            // Near expiry: whoever gets the lock refreshes; the others go on with the old
            // token, which is still valid.
            let Ok(_fetching) = self.fetching.try_lock() else {
                return Ok(token);
            };
            if let Some(newer) = self
                .usable()
                .filter(|newer| newer.expires_at > token.expires_at)
            {
                return Ok(newer);
            }
            // Spend at most half the time left on the refresh, then fall back on the old token.
            let give_up = now + deadline.saturating_duration_since(now) / 2;
            return match timeout_at(give_up, self.fetch()).await {
                Ok(Ok(fresh)) => Ok(fresh),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "early OAuth2 token refresh failed; the current token is still valid");
                    Ok(token)
                }
                Err(_) => Ok(token),
            };
        }

        // No valid token: wait for the one fetch in progress, or make it.
        let _fetching = timeout_at(deadline, self.fetching.lock())
            .await
            .map_err(|_| TokenError::Timeout)?;
        {
            let cache = self.cache();
            if let Some(token) = cache
                .token
                .clone()
                .filter(|t| t.expires_at > Instant::now())
            {
                return Ok(token);
            }
            // A fetch ended while this task waited, and it failed: share that failure
            // rather than asking again at once.
            if cache.fetches_done != fetches_seen
                && let Some(failure) = cache.last_failure.clone()
            {
                return Err(failure);
            }
        }
        timeout_at(deadline, self.fetch())
            .await
            .map_err(|_| TokenError::Timeout)?
    }

    /// Forgets `used` after FCM refused it, so the next [`get`](Self::get) fetches a new one.
    /// A newer token that another task fetched meanwhile is kept.
    pub(crate) fn invalidate(&self, used: &AccessToken) {
        let mut cache = self.cache();
        if cache
            .token
            .as_ref()
            .is_some_and(|current| current.authorization == used.authorization)
        {
            cache.token = None;
        }
    }

    /// One request to the token endpoint; the caller holds `fetching`.
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let result = self.request().await;
        crate::metrics::token_refresh(if result.is_ok() { "ok" } else { "error" });
        if let Ok(token) = &result {
            let left = token.expires_at.saturating_duration_since(Instant::now());
            if let Ok(since_epoch) =
                (std::time::SystemTime::now() + left).duration_since(std::time::UNIX_EPOCH)
            {
                crate::metrics::credential_expiry(since_epoch.as_secs_f64());
            }
        }
        let mut cache = self.cache();
        cache.fetches_done += 1;
        cache.last_failure = None;
        match &result {
            Ok(token) => cache.token = Some(token.clone()),
            Err(error) => cache.last_failure = Some(error.clone()),
        }
        result
    }

    async fn request(&self) -> Result<AccessToken, TokenError> {
        let assertion = self.signer.assertion().map_err(|_| TokenError::Signing)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER_GRANT_TYPE)
            .append_pair("assertion", &assertion)
            .finish();
        // The lifetime counts from before the request, so the cached expiry errs early.
        let requested_at = Instant::now();
        let response = self
            .http
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|error| TokenError::Transport(transport_failure(&error)))?;
        let status = response.status().as_u16();
        let body = read_capped(response).await.map_err(|error| match error {
            BodyError::Transport(failure) => TokenError::Transport(failure),
            BodyError::TooLarge => TokenError::BadAnswer("the answer is too large"),
        })?;
        if status != 200 {
            return Err(TokenError::Refused {
                status,
                error: oauth_error_code(&body),
            });
        }
        parse_token(&body, requested_at)
    }
}

/// RFC 6749 §5.1: `{"access_token": …, "token_type": "Bearer", "expires_in": …}`.
fn parse_token(body: &[u8], requested_at: Instant) -> Result<AccessToken, TokenError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| TokenError::BadAnswer("not JSON"))?;
    let bearer = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(TokenError::BadAnswer("no access_token"))?;
    if let Some(kind) = value.get("token_type")
        && !kind
            .as_str()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("bearer"))
    {
        return Err(TokenError::BadAnswer("token_type is not Bearer"));
    }
    let lifetime = match value.get("expires_in") {
        None => DEFAULT_LIFETIME,
        Some(seconds) => seconds
            .as_u64()
            .map(Duration::from_secs)
            .ok_or(TokenError::BadAnswer(
                "expires_in is not a number of seconds",
            ))?,
    };
    // Visible ASCII only (checked above), so the header value is valid.
    let mut authorization = HeaderValue::try_from(format!("Bearer {bearer}"))
        .map_err(|_| TokenError::BadAnswer("the access_token is not a header value"))?;
    authorization.set_sensitive(true);
    Ok(AccessToken {
        authorization,
        expires_at: requested_at + lifetime,
    })
}

/// RFC 6749 §5.2: the `error` code of a refusal, if it looks like one.
fn oauth_error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
        .filter(|code| {
            code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .unwrap_or_else(|| "no error code".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_s_token_answer_is_read() {
        let now = Instant::now();
        let token = parse_token(
            br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#,
            now,
        )
        .expect("token");
        assert_eq!(token.authorization(), "Bearer ya29.abc");
        assert!(token.authorization().is_sensitive());
        assert_eq!(token.expires_at, now + Duration::from_secs(3599));
        assert!(!format!("{token:?}").contains("ya29"));
    }

    #[test]
    fn answers_without_a_token_are_refused() {
        let now = Instant::now();
        for body in [
            &b"not json"[..],
            br#"{"expires_in":3599}"#,
            br#"{"access_token":"","expires_in":3599}"#,
            br#"{"access_token":"a b","expires_in":3599}"#,
            br#"{"access_token":"x","token_type":"mac"}"#,
            br#"{"access_token":"x","expires_in":"soon"}"#,
        ] {
            assert!(
                matches!(parse_token(body, now), Err(TokenError::BadAnswer(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn refusal_codes_are_kept_only_when_they_look_like_codes() {
        assert_eq!(
            oauth_error_code(br#"{"error":"invalid_grant","error_description":"Bad"}"#),
            "invalid_grant"
        );
        assert_eq!(
            oauth_error_code(br#"{"error":"<b>x</b>"}"#),
            "no error code"
        );
        assert_eq!(oauth_error_code(b"<html>"), "no error code");
    }
}
