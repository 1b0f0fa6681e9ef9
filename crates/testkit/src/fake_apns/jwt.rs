//! Provider tokens: ES256 JWTs as Apple's "Establishing a token-based connection to APNs"
//! describes them, a header `{"alg":"ES256","kid":…}`, claims `{"iss":…,"iat":…}` and the raw
//! 64-byte r‖s signature, each base64url without padding.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{ApnsJwt, FAKE_KEY_ID, FAKE_TEAM_ID};

/// Why a provider token is refused; each is a 403 `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Invalid,
    Expired,
}

fn key_pair(key_p8: &str) -> Result<EcdsaKeyPair, String> {
    let base64: String = key_p8
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(base64.trim())
        .map_err(|error| error.to_string())?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map_err(|error| error.to_string())
}

/// The public key (uncompressed point) of a PKCS#8 PEM P-256 key.
pub(super) fn public_key_of(key_p8: &str) -> Result<Vec<u8>, String> {
    Ok(key_pair(key_p8)?.public_key().as_ref().to_vec())
}

/// A provider token signed with `key_p8` (a PKCS#8 PEM P-256 key, as in Apple's `.p8` files),
/// header `{"alg":"ES256","kid":kid}`, claims `{"iss":iss,"iat":iat}`.
///
/// # Panics
///
/// If `key_p8` is not a PKCS#8 PEM P-256 key, as the fake's test keys are.
pub fn sign_jwt(key_p8: &str, kid: &str, iss: &str, iat: u64) -> String {
    let key = key_pair(key_p8)
        .unwrap_or_else(|error| panic!("sign_jwt: not a PKCS#8 PEM P-256 key: {error}"));
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "ES256", "kid": kid }).to_string());
    let claims = URL_SAFE_NO_PAD.encode(json!({ "iss": iss, "iat": iat }).to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap_or_else(|error| panic!("sign_jwt: signing failed: {error}"));
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

fn json_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// The header and claims of `token`, when both decode and hold the fields APNs reads.
pub(super) fn decode(token: &str) -> Option<ApnsJwt> {
    let mut parts = token.split('.');
    let header = json_part(parts.next()?)?;
    let claims = json_part(parts.next()?)?;
    Some(ApnsJwt {
        alg: header["alg"].as_str()?.to_owned(),
        kid: header["kid"].as_str()?.to_owned(),
        iss: claims["iss"].as_str()?.to_owned(),
        iat: claims["iat"].as_u64()?,
    })
}

/// Checks `token` as APNs does: ES256 by the fake's key and key ID, for the fake team, issued
/// no more than [`PROVIDER_TOKEN_MAX_AGE`](super::PROVIDER_TOKEN_MAX_AGE) before `now_secs`.
pub(super) fn check(token: &str, public_key: &[u8], now_secs: u64) -> Result<(), Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(Refusal::Invalid);
    };
    let decoded = decode(token).ok_or(Refusal::Invalid)?;
    if decoded.alg != "ES256" || decoded.kid != FAKE_KEY_ID || decoded.iss != FAKE_TEAM_ID {
        return Err(Refusal::Invalid);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Refusal::Invalid)?;
    if signature.len() != 64 {
        return Err(Refusal::Invalid);
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| Refusal::Invalid)?;
    if now_secs.saturating_sub(decoded.iat) > super::PROVIDER_TOKEN_MAX_AGE.as_secs() {
        return Err(Refusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apns::{FAKE_KEY_P8, UNKNOWN_KEY_P8};

    #[test]
    fn a_signed_token_checks_and_decodes() {
        let public_key = public_key_of(FAKE_KEY_P8).expect("the fake key is a P-256 key");
        let token = sign_jwt(FAKE_KEY_P8, FAKE_KEY_ID, FAKE_TEAM_ID, 1_000_000);
        assert_eq!(check(&token, &public_key, 1_000_010), Ok(()));
        assert_eq!(check(&token, &public_key, 1_003_601), Err(Refusal::Expired));
        assert_eq!(
            decode(&token),
            Some(ApnsJwt {
                alg: "ES256".to_owned(),
                kid: FAKE_KEY_ID.to_owned(),
                iss: FAKE_TEAM_ID.to_owned(),
                iat: 1_000_000,
            })
        );
        let signature = token.rsplit('.').next().expect("three parts");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(signature).expect("base64url").len(),
            64
        );
    }

    #[test]
    fn other_keys_teams_and_shapes_are_invalid() {
        let public_key = public_key_of(FAKE_KEY_P8).expect("the fake key is a P-256 key");
        let now = 1_000_000;
        for token in [
            sign_jwt(UNKNOWN_KEY_P8, FAKE_KEY_ID, FAKE_TEAM_ID, now),
            sign_jwt(FAKE_KEY_P8, "OTHERKEY99", FAKE_TEAM_ID, now),
            sign_jwt(FAKE_KEY_P8, FAKE_KEY_ID, "OTHERTEAM9", now),
            "not a jwt".to_owned(),
            "a.b.c".to_owned(),
        ] {
            assert_eq!(
                check(&token, &public_key, now),
                Err(Refusal::Invalid),
                "{token}"
            );
        }
    }
}
