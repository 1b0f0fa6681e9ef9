//! The OAuth2 JWT bearer grant (RFC 7523 §2.1) that trades the service account's key for an
//! access token, signed RS256 (RFC 7518 §3.3) as Google's token endpoint requires.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::service_account::ServiceAccount;

/// The one scope FCM HTTP v1 needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The `grant_type` of a JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is valid: Google accepts at most one hour between `iat` and `exp`.
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// Signs grant assertions for one service account.
pub(crate) struct GrantSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
    /// The base64url JWT header, the same for every assertion.
    header: String,
    issuer: String,
    audience: String,
}

/// The service account's key cannot sign RS256 (aws-lc refused it, e.g. too short a modulus).
#[derive(Debug, thiserror::Error)]
#[error("the service account's private key cannot sign RS256: {0}")]
pub struct UnusableKey(String);

/// Signing failed at run time (the random source or the key); never expected.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("signing the OAuth2 grant failed")]
pub(crate) struct SigningFailed;

impl GrantSigner {
    pub(crate) fn new(account: &ServiceAccount) -> Result<Self, UnusableKey> {
        let key = RsaKeyPair::from_pkcs8(account.private_key.pkcs8_der())
            .map_err(|rejected| UnusableKey(rejected.to_string()))?;
        // RFC 7515 §4.1.4: `kid` names the key so Google picks the right public key.
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": account.private_key_id});
        Ok(Self {
            key,
            rng: SystemRandom::new(),
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            issuer: account.client_email.clone(),
            audience: account.token_uri.clone(),
        })
    }

    /// A signed assertion issued now.
    pub(crate) fn assertion(&self) -> Result<String, SigningFailed> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.assertion_at(now)
    }

    /// A signed assertion issued at `iat` (Unix seconds).
    pub(crate) fn assertion_at(&self, iat: u64) -> Result<String, SigningFailed> {
        let claims = json!({
            "iss": self.issuer,
            "scope": FCM_SCOPE,
            "aud": self.audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| SigningFailed)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

impl fmt::Debug for GrantSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantSigner")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use serde_json::Value;

    use super::*;

    fn account() -> ServiceAccount {
        ServiceAccount::from_json(include_str!("../tests/data/service-account.json"))
            .expect("fixture is valid")
    }

    fn part(text: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
    }

    #[test]
    fn the_assertion_carries_google_s_claims_and_a_valid_rs256_signature() {
        let account = account();
        let signer = GrantSigner::new(&account).expect("usable key");
        let jwt = signer.assertion_at(1_700_000_000).expect("signed");
        let pieces: Vec<&str> = jwt.split('.').collect();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            part(pieces[0]),
            json!({"alg": "RS256", "typ": "JWT", "kid": account.private_key_id})
        );
        assert_eq!(
            part(pieces[1]),
            json!({
                "iss": "pushgate@pushgate-test.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let signature = URL_SAFE_NO_PAD.decode(pieces[2]).expect("base64url");
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            signer.key.public_key().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", pieces[0], pieces[1]);
        assert!(public.verify(signed.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"something else", &signature).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let signer = GrantSigner::new(&account()).expect("usable key");
        let printed = format!("{signer:?}");
        assert!(printed.contains("pushgate@pushgate-test"));
        assert!(!printed.contains("PRIVATE"));
    }
}
