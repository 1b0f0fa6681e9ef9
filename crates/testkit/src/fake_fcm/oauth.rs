//! The fake Google OAuth2 token endpoint: checks the JWT bearer grant (RFC 7523) as Google
//! does and issues bearer tokens.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::answer::json as json_answer;
use super::{FAKE_CLIENT_EMAIL, FAKE_PRIVATE_KEY_ID, Shared};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// How far the signer's clock may be ahead.
const CLOCK_SKEW_SECS: u64 = 60;

/// The RSA public key (PKCS#1 DER) of a service account's `private_key`.
pub(super) fn public_key_of(account: &Value) -> Result<Vec<u8>, String> {
    let pem = account["private_key"].as_str().ok_or("no private_key")?;
    let base64: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(base64).map_err(|e| e.to_string())?;
    let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?;
    Ok(key.public_key().as_ref().to_vec())
}

pub(super) async fn token_endpoint(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    shared.token_requests.fetch_add(1, Ordering::Relaxed);
    let (delay, refuse, lifetime) = {
        let state = shared.state();
        (state.token_delay, state.refuse_grants, state.token_lifetime)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return refusal("invalid_request", "Expected a form-encoded body.");
    }
    let mut grant_type = None;
    let mut assertion = None;
    for (name, value) in url::form_urlencoded::parse(body) {
        match &*name {
            "grant_type" => grant_type = Some(value.into_owned()),
            "assertion" => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    if grant_type.as_deref() != Some(GRANT_TYPE) {
        return refusal("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = assertion else {
        return refusal("invalid_request", "Missing required parameter: assertion");
    };
    if let Err(problem) = check_assertion(&assertion, &shared.public_key, &shared.token_uri()) {
        return refusal("invalid_grant", problem);
    }
    if refuse {
        return refusal("invalid_grant", "Invalid JWT Signature.");
    }

    let access_token = {
        let mut state = shared.state();
        state.issued += 1;
        let token = format!("ya29.fake-{}-{:016x}", state.issued, rand_suffix());
        let expires_at = tokio::time::Instant::now() + lifetime;
        state.access_tokens.insert(token.clone(), expires_at);
        token
    };
    json_answer(
        200,
        &json!({
            "access_token": access_token,
            "expires_in": lifetime.as_secs(),
            "token_type": "Bearer",
        }),
        None,
    )
}

fn refusal(error: &str, description: &str) -> Response {
    json_answer(
        400,
        &json!({"error": error, "error_description": description}),
        None,
    )
}

fn rand_suffix() -> u64 {
    let mut bytes = [0u8; 8];
    // A failing system random source only makes the token guessable, which a fake can bear.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Google's checks of a grant: RS256 over `header.claims` with the account's key, the `kid`,
/// and the claims `iss`, `scope`, `aud`, `iat`, `exp` (at most one hour).
fn check_assertion(jwt: &str, public_key: &[u8], audience: &str) -> Result<(), &'static str> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: not three parts.");
    };
    let decode = |part: &str| -> Result<Value, &'static str> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "Invalid JWT: not base64url.")?;
        serde_json::from_slice(&bytes).map_err(|_| "Invalid JWT: not JSON.")
    };
    let header_value = decode(header)?;
    if header_value["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256.");
    }
    if header_value["kid"] != FAKE_PRIVATE_KEY_ID {
        return Err("Invalid JWT Signature.");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let signed = &jwt[..header.len() + 1 + claims.len()];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.")?;

    let claims = decode(claims)?;
    if claims["iss"] != FAKE_CLIENT_EMAIL {
        return Err("Invalid JWT: iss is not the service account.");
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|scope| scope == FCM_SCOPE) {
        return Err("Invalid OAuth scope or ID token audience provided.");
    }
    if claims["aud"] != audience {
        return Err("Invalid JWT: Failed audience check.");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp must be numbers.");
    };
    if iat > now + CLOCK_SKEW_SECS {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if exp <= now || exp <= iat || exp - iat > 3600 {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::RSA_PKCS1_SHA256;

    use super::*;

    const AUDIENCE: &str = "http://127.0.0.1:9/token";

    fn key() -> RsaKeyPair {
        let account = super::super::service_account_value();
        let pem = account["private_key"].as_str().expect("key");
        let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        RsaKeyPair::from_pkcs8(&STANDARD.decode(base64).expect("base64")).expect("key")
    }

    fn sign(key: &RsaKeyPair, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .expect("signed");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    fn header() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": FAKE_PRIVATE_KEY_ID})
    }

    fn claims() -> Value {
        json!({"iss": FAKE_CLIENT_EMAIL, "scope": FCM_SCOPE, "aud": AUDIENCE,
               "iat": now(), "exp": now() + 3600})
    }

    #[test]
    fn a_correct_grant_passes_and_each_wrong_claim_fails() {
        let key = key();
        let public = key.public_key().as_ref().to_vec();
        assert_eq!(
            check_assertion(&sign(&key, &header(), &claims()), &public, AUDIENCE),
            Ok(())
        );

        let mut wrong_kid = header();
        wrong_kid["kid"] = "other".into();
        let mut cases = vec![sign(&key, &wrong_kid, &claims())];
        for (field, value) in [
            ("iss", json!("someone@else")),
            (
                "scope",
                json!("https://www.googleapis.com/auth/cloud-platform"),
            ),
            ("aud", json!("https://oauth2.googleapis.com/token")),
            ("exp", json!(now() + 7200)),
            ("iat", json!(now() + 600)),
        ] {
            let mut bad = claims();
            bad[field] = value;
            cases.push(sign(&key, &header(), &bad));
        }
        let mut expired = claims();
        expired["iat"] = (now() - 7200).into();
        expired["exp"] = (now() - 3600).into();
        cases.push(sign(&key, &header(), &expired));
        let good = sign(&key, &header(), &claims());
        let (signed, _) = good.rsplit_once('.').expect("three parts");
        cases.push(format!("{signed}.AAAA"));
        cases.push("a.b".to_owned());
        for jwt in cases {
            assert!(check_assertion(&jwt, &public, AUDIENCE).is_err(), "{jwt}");
        }
    }
}
