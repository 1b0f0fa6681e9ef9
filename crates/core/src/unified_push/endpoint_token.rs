//! Endpoint tokens: the stateless `{token}` in `{public_url}/push/{token}` (docs/protocol.md A.3).
//!
//! A token is PASETO `v2.local` over `{"sub":…,"exp":…,"application":…,"instance":…}` with the
//! raw configured key, byte-compatible with up, so endpoints up issued keep working after an
//! operator switches (trap 9).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::paseto;
use super::up_id::UpId;
use crate::bounded_cache::BoundedCache;
use crate::clock::UnixMillis;

/// The longest token accepted or issued, in bytes. Checked before any decoding, so a huge path
/// costs nothing; a full JID of realistic size gives a token of about 300 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A 32-byte XChaCha20-Poly1305 key, used raw (no KDF) as up does. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointKey([u8; 32]);

/// Why a configured endpoint key is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointKeyError {
    /// The text is not standard base64 (as `openssl rand -base64 32` writes).
    #[error("the endpoint key is not standard base64")]
    NotBase64,
    /// It decodes to something other than 32 bytes.
    #[error("the endpoint key decodes to {decoded} bytes instead of 32")]
    WrongLength {
        /// How many bytes it decodes to.
        decoded: usize,
    },
    /// No key was configured at all.
    #[error("no endpoint key is configured")]
    NoKey,
}

impl EndpointKey {
    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from standard base64, as up's `registration.sharedSecret` holds it. Surrounding
    /// whitespace (a trailing newline from a key file) is ignored.
    pub fn from_base64(text: &str) -> Result<Self, EndpointKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| EndpointKeyError::NotBase64)?;
        let decoded = bytes.len();
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| EndpointKeyError::WrongLength { decoded })
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// The key as standard base64, for writing a generated key into the configuration.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EndpointKey(…)")
    }
}

/// How many opened tokens are remembered: each costs about 600 bytes.
const OPENED_TOKENS: usize = 1024;

/// The configured keys: the first seals new tokens, every one opens (key rotation: put the
/// new key first and keep the old one until the tokens it sealed have expired). Tokens that
/// opened recently are remembered (clones share them), so a busy endpoint is decrypted once.
#[derive(Clone)]
pub struct EndpointKeys {
    keys: Vec<EndpointKey>,
    opened: Arc<BoundedCache<EndpointClaims>>,
}

impl EndpointKeys {
    /// The keys in configuration order; at least one.
    pub fn new(keys: Vec<EndpointKey>) -> Result<Self, EndpointKeyError> {
        if keys.is_empty() {
            return Err(EndpointKeyError::NoKey);
        }
        Ok(Self::with_keys(keys))
    }

    /// A single key that both seals and opens.
    pub fn single(key: EndpointKey) -> Self {
        Self::with_keys(vec![key])
    }

    fn with_keys(keys: Vec<EndpointKey>) -> Self {
        Self {
            keys,
            opened: Arc::new(BoundedCache::new(OPENED_TOKENS)),
        }
    }

    /// Seals `claims` with the first key into a token. Each call uses a fresh random nonce
    /// key, so sealing the same claims twice gives two different tokens.
    pub fn seal(&self, claims: &EndpointClaims) -> Result<String, SealError> {
        let message = claims.to_json();
        let len = paseto::sealed_len(message.len());
        if len > MAX_TOKEN_LEN {
            return Err(SealError::TooLong { len });
        }
        let key = &self.keys[0].0;
        paseto::seal(key, &message).map_err(|_| SealError::TooLong { len })
    }

    /// Opens `token` with whichever configured key sealed it and checks its expiry against
    /// `now`: a token whose `exp` is at or before `now` is expired (no clock skew, as
    /// jpaseto). Never panics, whatever `token` holds.
    pub fn open(&self, token: &str, now: UnixMillis) -> Result<EndpointClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        if let Some(claims) = self.opened.get(token) {
            return if claims.expires_at <= now {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = self.decrypt(token)?;
        if claims.expires_at <= now {
            return Err(TokenError::Expired);
        }
        self.opened.insert(token, &claims);
        Ok(claims)
    }

    /// For operators (`pushgate endpoint inspect`): which key opens `token` (its index in the
    /// configured list) and the claims, whatever their expiry. Tries the keys one by one, so
    /// it is slower than [`open`](Self::open); never on a hot path.
    pub fn inspect(&self, token: &str) -> Result<(usize, EndpointClaims), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let claims = self.decrypt(token)?;
        let index = self
            .keys
            .iter()
            .position(|key| paseto::open([&key.0], token).is_ok())
            .unwrap_or_default();
        Ok((index, claims))
    }

    /// The claims `token` holds, if one of the keys sealed it, whatever their expiry.
    fn decrypt(&self, token: &str) -> Result<EndpointClaims, TokenError> {
        let message = paseto::open(self.keys.iter().map(|key| &key.0), token).map_err(
            |failure| match failure {
                paseto::OpenFailure::Malformed => TokenError::Malformed,
                paseto::OpenFailure::NotAuthentic => TokenError::WrongKeyOrTampered,
            },
        )?;
        // Authentic but not our claims: sealed by something else sharing the key.
        let claims: OpenedClaims =
            serde_json::from_slice(&message).map_err(|_| TokenError::Malformed)?;
        let claims = EndpointClaims {
            owner: claims.sub,
            expires_at: claims.exp,
            application: UpId::parse(&claims.application).map_err(|_| TokenError::Malformed)?,
            instance: UpId::parse(&claims.instance).map_err(|_| TokenError::Malformed)?,
        };
        Ok(claims)
    }

    /// How many opened tokens are remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.opened.len()
    }
}

impl fmt::Debug for EndpointKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointKeys({} keys)", self.keys.len())
    }
}

/// What an endpoint token says: whose endpoint it is, for which app instance, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointClaims {
    /// The full JID (with resource) that registered, exactly as received; pushes go to it.
    pub owner: String,
    /// When the endpoint stops working (PASETO `exp`, in epoch milliseconds as up writes it).
    pub expires_at: UnixMillis,
    /// The UnifiedPush `application` id.
    pub application: UpId,
    /// The UnifiedPush `instance` id.
    pub instance: UpId,
}

impl EndpointClaims {
    /// The claims as up writes them, in its field order (sub, exp, application, instance) and
    /// without spaces. `Value`'s `Display` escapes each string and cannot fail.
    fn to_json(&self) -> Vec<u8> {
        format!(
            r#"{{"sub":{},"exp":{},"application":{},"instance":{}}}"#,
            serde_json::Value::from(self.owner.as_str()),
            self.expires_at,
            serde_json::Value::from(self.application.as_str()),
            serde_json::Value::from(self.instance.as_str()),
        )
        .into_bytes()
    }
}

/// Why a token did not open. The HTTP side answers every one with 404 (docs/protocol.md A.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a footer-less `v2.local` token of acceptable length, or its claims are not ours.
    #[error("malformed endpoint token")]
    Malformed,
    /// None of the configured keys authenticates it: another key, or altered in transit.
    #[error("endpoint token sealed with another key or altered")]
    WrongKeyOrTampered,
    /// Authentic, but its `exp` has passed.
    #[error("endpoint token expired")]
    Expired,
}

/// Why claims could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The token would be longer than [`MAX_TOKEN_LEN`] and so never open; only an absurdly
    /// long JID gets here, and the registration is refused (`bad-request`).
    #[error("the endpoint token would be {len} bytes, over the limit of {MAX_TOKEN_LEN}")]
    TooLong {
        /// The length the token would have had.
        len: usize,
    },
}

/// The claims as read back. `exp` must be a JSON integer (epoch milliseconds); other claims a
/// foreign issuer might add are ignored, as jpaseto does.
#[derive(Deserialize)]
struct OpenedClaims {
    sub: String,
    exp: UnixMillis,
    application: String,
    instance: String,
}

#[cfg(test)]
#[path = "endpoint_token_tests.rs"]
mod tests;
