//! The provider token: an ES256 JWT (`{"alg":"ES256","kid":…}`, `{"iss":team,"iat":…}`) that
//! every request to APNs carries as `authorization: bearer …`.
//!
//! Apple: "Refresh your token no more than once every 20 minutes and no less than once every
//! 60 minutes"; a request whose token is over an hour old is refused, and a connection that
//! sees new tokens too often is answered 429 `TooManyProviderTokenUpdates` for a while. So
//! one token is shared by every connection and signed anew once it is [`RESIGN_AFTER`] old;
//! when APNs calls it expired sooner, it is signed anew only if it is at least
//! [`MIN_RESIGN_AFTER`] old (a younger one means the clocks disagree, which a new token
//! cannot mend). Its age is read from the wall clock: a monotonic clock stops while a machine
//! sleeps, and Apple counts from `iat`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use pushgate_core::Clock;
use serde_json::json;

use crate::signing_key::SigningKey;

/// A provider token is signed anew once it is this old (Apple's window is 20 to 60 minutes).
pub const RESIGN_AFTER: Duration = Duration::from_secs(50 * 60);

/// The youngest a token may be and still be replaced when APNs calls it expired.
pub const MIN_RESIGN_AFTER: Duration = Duration::from_secs(20 * 60);

/// How long APNs accepts a token after its `iat`.
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 3600;

/// One signed token.
#[derive(Debug)]
pub(crate) struct ProviderToken {
    /// `bearer <jwt>`, marked sensitive.
    pub(crate) authorization: HeaderValue,
    /// Its `iat`, Unix seconds.
    pub(crate) issued_at: u64,
}

/// Signing failed at run time (the random source or the key); never expected.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("signing the APNs provider token failed")]
pub(crate) struct SigningFailed;

/// The token in use and the key that signs the next one.
pub(crate) struct ProviderTokens {
    key: SigningKey,
    /// The base64url JWT header, the same for every token.
    header: String,
    clock: Arc<dyn Clock>,
    current: Mutex<Option<Arc<ProviderToken>>>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTokens")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ProviderTokens {
    pub(crate) fn new(key: SigningKey, clock: Arc<dyn Clock>) -> Self {
        let header = json!({"alg": "ES256", "kid": key.key_id});
        Self {
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            key,
            clock,
            current: Mutex::new(None),
        }
    }

    /// The token to send now: the current one, or a new one when it is [`RESIGN_AFTER`] old.
    pub(crate) fn get(&self) -> Result<Arc<ProviderToken>, SigningFailed> {
        let now = self.now_secs();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = current.as_ref()
            && now.saturating_sub(token.issued_at) < RESIGN_AFTER.as_secs()
        {
            return Ok(Arc::clone(token));
        }
        let token = Arc::new(self.sign(now)?);
        *current = Some(Arc::clone(&token));
        Ok(token)
    }

    /// APNs answered `ExpiredProviderToken` to `used`. True when a request may be tried again
    /// with [`get`](Self::get): another request already replaced it, or it is old enough to be
    /// replaced now. False when it is younger than [`MIN_RESIGN_AFTER`].
    pub(crate) fn expired(&self, used: &Arc<ProviderToken>) -> bool {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(token) if Arc::ptr_eq(token, used) => {
                let age = self.now_secs().saturating_sub(used.issued_at);
                if age < MIN_RESIGN_AFTER.as_secs() {
                    return false;
                }
                *current = None;
                true
            }
            _ => true,
        }
    }

    /// How old `token` is now, in seconds.
    pub(crate) fn age_secs(&self, token: &ProviderToken) -> u64 {
        self.now_secs().saturating_sub(token.issued_at)
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.clock.now() / 1000).unwrap_or(0)
    }

    fn sign(&self, iat: u64) -> Result<ProviderToken, SigningFailed> {
        let claims = json!({"iss": self.key.team_id, "iat": iat});
        let signing_input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .key
            .sign(&self.key.rng, signing_input.as_bytes())
            .map_err(|_| SigningFailed)?;
        let mut authorization = HeaderValue::try_from(format!(
            "bearer {signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
        .map_err(|_| SigningFailed)?;
        authorization.set_sensitive(true);
        crate::metrics::token_signed(iat + TOKEN_LIFETIME_SECS);
        Ok(ProviderToken {
            authorization,
            issued_at: iat,
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, KeyPair as _, UnparsedPublicKey};
    use pushgate_core::clock::FixedClock;
    use serde_json::Value;

    use super::*;

    const START_MS: i64 = 1_700_000_000_000;

    fn tokens() -> (ProviderTokens, Arc<FixedClock>) {
        let key = SigningKey::from_pem(
            include_str!("../tests/data/AuthKey_TESTKEY001.p8"),
            "TESTKEY001",
            "TESTTEAM01",
        )
        .expect("usable key");
        let clock = Arc::new(FixedClock::new(START_MS));
        (ProviderTokens::new(key, Arc::clone(&clock) as _), clock)
    }

    fn part(text: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
    }

    fn minutes(count: i64) -> i64 {
        count * 60_000
    }

    #[test]
    fn the_token_is_an_es256_jwt_with_apple_s_header_and_claims() {
        let (tokens, _) = tokens();
        let token = tokens.get().expect("signed");
        assert!(token.authorization.is_sensitive());
        let text = token.authorization.to_str().expect("ASCII");
        let jwt = text.strip_prefix("bearer ").expect("bearer scheme");
        let pieces: Vec<&str> = jwt.split('.').collect();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            part(pieces[0]),
            json!({"alg": "ES256", "kid": "TESTKEY001"})
        );
        assert_eq!(
            part(pieces[1]),
            json!({"iss": "TESTTEAM01", "iat": 1_700_000_000u64})
        );
        let signature = URL_SAFE_NO_PAD.decode(pieces[2]).expect("base64url");
        assert_eq!(
            signature.len(),
            64,
            "ES256 signatures are r and s, 32 bytes each"
        );
        let public = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            tokens.key.key.public_key().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", pieces[0], pieces[1]);
        assert!(public.verify(signed.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"something else", &signature).is_err());
    }

    #[test]
    fn one_token_is_shared_until_it_is_fifty_minutes_old() {
        let (tokens, clock) = tokens();
        let first = tokens.get().expect("signed");
        clock.advance(minutes(49));
        assert!(Arc::ptr_eq(&first, &tokens.get().expect("token")));
        clock.advance(minutes(1));
        let second = tokens.get().expect("signed");
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.issued_at, first.issued_at + 50 * 60);
    }

    #[test]
    fn an_expired_answer_replaces_a_token_only_when_it_is_twenty_minutes_old() {
        let (tokens, clock) = tokens();
        let first = tokens.get().expect("signed");
        clock.advance(minutes(19));
        assert!(
            !tokens.expired(&first),
            "a young token is kept: the clocks disagree"
        );
        assert!(Arc::ptr_eq(&first, &tokens.get().expect("token")));
        clock.advance(minutes(1));
        assert!(tokens.expired(&first));
        let second = tokens.get().expect("signed");
        assert!(!Arc::ptr_eq(&first, &second));
        // A request that still held the old one does not replace the new one again.
        assert!(tokens.expired(&first));
        assert!(Arc::ptr_eq(&second, &tokens.get().expect("token")));
    }
}
