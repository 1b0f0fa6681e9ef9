//! Endpoint tokens issued by up (jpaseto) and ids as Conversations computes them: pushgate must
//! open every token up issued with the same key, to exactly its claims.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pushgate_core::{EndpointClaims, EndpointKey, EndpointKeys, TokenError, UpId};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Vectors {
    endpoint_tokens: Vec<TokenVector>,
    up_ids: Vec<IdVector>,
    wrong_key_token: String,
}

#[derive(Deserialize)]
struct TokenVector {
    key: String,
    token: String,
    claims: Claims,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    application: String,
    instance: String,
}

#[derive(Deserialize)]
struct IdVector {
    account_uuid: String,
    value: String,
    id: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/up_vectors.json")).expect("vectors parse")
}

/// Before every `exp` in the vectors (they lie in 2030).
const BEFORE_2030: i64 = 1_800_000_000_000;

#[test]
fn every_token_up_issued_opens_to_exactly_its_claims() {
    let vectors = vectors();
    assert!(!vectors.endpoint_tokens.is_empty());
    for vector in &vectors.endpoint_tokens {
        let keys = EndpointKeys::single(EndpointKey::from_base64(&vector.key).expect("key"));
        let expected = EndpointClaims {
            owner: vector.claims.sub.clone(),
            expires_at: vector.claims.exp,
            application: UpId::parse(&vector.claims.application).expect("id"),
            instance: UpId::parse(&vector.claims.instance).expect("id"),
        };
        assert_eq!(keys.open(&vector.token, BEFORE_2030), Ok(expected));
    }
}

#[test]
fn up_tokens_open_when_their_key_is_any_of_several() {
    let vectors = vectors();
    let all: Vec<EndpointKey> = vectors
        .endpoint_tokens
        .iter()
        .map(|vector| EndpointKey::from_base64(&vector.key).expect("key"))
        .collect();
    let keys = EndpointKeys::new(all).expect("keys");
    for vector in &vectors.endpoint_tokens {
        let claims = keys.open(&vector.token, BEFORE_2030).expect("opens");
        assert_eq!(claims.owner, vector.claims.sub);
    }
}

#[test]
fn up_tokens_expire_at_their_exp() {
    for vector in &vectors().endpoint_tokens {
        let keys = EndpointKeys::single(EndpointKey::from_base64(&vector.key).expect("key"));
        assert!(keys.open(&vector.token, vector.claims.exp - 1).is_ok());
        assert_eq!(
            keys.open(&vector.token, vector.claims.exp),
            Err(TokenError::Expired)
        );
    }
}

#[test]
fn an_up_token_does_not_open_with_another_vector_s_key() {
    let vectors = vectors();
    for (i, vector) in vectors.endpoint_tokens.iter().enumerate() {
        for (j, other) in vectors.endpoint_tokens.iter().enumerate() {
            if i == j {
                continue;
            }
            let keys = EndpointKeys::single(EndpointKey::from_base64(&other.key).expect("key"));
            assert_eq!(
                keys.open(&vector.token, BEFORE_2030),
                Err(TokenError::WrongKeyOrTampered)
            );
        }
    }
}

#[test]
fn the_wrong_key_token_fails_with_every_key() {
    let vectors = vectors();
    for vector in &vectors.endpoint_tokens {
        let keys = EndpointKeys::single(EndpointKey::from_base64(&vector.key).expect("key"));
        assert_eq!(
            keys.open(&vectors.wrong_key_token, BEFORE_2030),
            Err(TokenError::WrongKeyOrTampered)
        );
    }
}

#[test]
fn tokens_pushgate_seals_open_with_the_same_keys_as_up_s() {
    for vector in &vectors().endpoint_tokens {
        let keys = EndpointKeys::single(EndpointKey::from_base64(&vector.key).expect("key"));
        let claims = keys.open(&vector.token, BEFORE_2030).expect("opens");
        let resealed = keys.seal(&claims).expect("seals");
        assert_ne!(resealed, vector.token, "a fresh nonce each time");
        assert_eq!(keys.open(&resealed, BEFORE_2030), Ok(claims));
    }
}

#[test]
fn conversations_ids_are_up_ids() {
    for vector in &vectors().up_ids {
        // Conversations: base64(SHA-256(account uuid + NUL + value)), padded, 44 characters.
        let mut sha = Sha256::new();
        sha.update(vector.account_uuid.as_bytes());
        sha.update([0u8]);
        sha.update(vector.value.as_bytes());
        assert_eq!(STANDARD.encode(sha.finalize()), vector.id);
        let id = UpId::parse(&vector.id).expect("a Conversations id is valid");
        assert_eq!(id.as_str(), vector.id);
    }
}
