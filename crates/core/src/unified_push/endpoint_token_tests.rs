use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

const APPLICATION: &str = "WFekBFu55IP9GVrRSABOPfUaPVqPjQiP/fb++/tnIoE=";
const INSTANCE: &str = "sK07IR4sINoILr9r09PQSQqOA2w8ooFUwJyjcuKhD3o=";
const NOW: UnixMillis = 1_800_000_000_000;
const EXP: UnixMillis = 1_800_604_800_000;

fn key(byte: u8) -> EndpointKey {
    EndpointKey::from_bytes([byte; 32])
}

fn claims(owner: &str) -> EndpointClaims {
    EndpointClaims {
        owner: owner.to_owned(),
        expires_at: EXP,
        application: UpId::parse(APPLICATION).expect("valid id"),
        instance: UpId::parse(INSTANCE).expect("valid id"),
    }
}

/// A token sealed with `key` over any plaintext, as a foreign issuer sharing the key could make.
fn seal_raw(key: u8, plaintext: &str) -> String {
    paseto::seal(&[key; 32], plaintext.as_bytes()).expect("seals")
}

#[test]
fn seal_then_open_gives_the_claims_back() {
    let keys = EndpointKeys::single(key(1));
    let claims = claims("alice@example.test/Conversations.AbCd");
    let token = keys.seal(&claims).expect("seals");
    assert!(token.starts_with("v2.local."));
    assert_eq!(keys.open(&token, NOW), Ok(claims));
}

#[test]
fn the_plaintext_is_up_s_json_in_up_s_field_order() {
    let keys = EndpointKeys::single(key(1));
    let token = keys
        .seal(&claims("a\"b@example.test/r\\es"))
        .expect("seals");
    let plaintext = paseto::open([&[1u8; 32]], &token).expect("opens");
    let expected = format!(
        r#"{{"sub":"a\"b@example.test/r\\es","exp":{EXP},"application":"{APPLICATION}","instance":"{INSTANCE}"}}"#
    );
    assert_eq!(String::from_utf8(plaintext).expect("utf-8"), expected);
}

#[test]
fn sealing_twice_gives_different_tokens_that_both_open() {
    let keys = EndpointKeys::single(key(1));
    let claims = claims("alice@example.test/phone");
    let first = keys.seal(&claims).expect("seals");
    let second = keys.seal(&claims).expect("seals");
    assert_ne!(first, second);
    assert_eq!(keys.open(&first, NOW), Ok(claims.clone()));
    assert_eq!(keys.open(&second, NOW), Ok(claims));
}

#[test]
fn the_first_key_seals_and_every_key_opens() {
    let old = EndpointKeys::single(key(1));
    let rotated = EndpointKeys::new(vec![key(2), key(1)]).expect("two keys");
    let claims = claims("alice@example.test/phone");

    let from_old = old.seal(&claims).expect("seals");
    assert_eq!(rotated.open(&from_old, NOW), Ok(claims.clone()));

    let from_rotated = rotated.seal(&claims).expect("seals");
    assert_eq!(
        old.open(&from_rotated, NOW),
        Err(TokenError::WrongKeyOrTampered),
        "the new key seals, so the old key alone cannot open it"
    );
    assert_eq!(
        EndpointKeys::single(key(2)).open(&from_rotated, NOW),
        Ok(claims.clone())
    );

    let unknown = EndpointKeys::single(key(3)).seal(&claims).expect("seals");
    assert_eq!(
        rotated.open(&unknown, NOW),
        Err(TokenError::WrongKeyOrTampered)
    );
}

#[test]
fn a_token_expires_exactly_at_exp() {
    let keys = EndpointKeys::single(key(1));
    let claims = claims("alice@example.test/phone");
    let token = keys.seal(&claims).expect("seals");
    assert_eq!(keys.open(&token, EXP - 1), Ok(claims));
    assert_eq!(keys.open(&token, EXP), Err(TokenError::Expired));
    assert_eq!(keys.open(&token, EXP + 1), Err(TokenError::Expired));
}

#[test]
fn only_tokens_that_open_are_remembered_and_expiry_is_checked_every_time() {
    let keys = EndpointKeys::single(key(1));
    let claims = claims("alice@example.test/phone");
    let token = keys.seal(&claims).expect("seals");
    assert_eq!(keys.open(&token, EXP), Err(TokenError::Expired));
    assert_eq!(keys.remembered(), 0, "an expired token is not remembered");
    assert_eq!(keys.open(&token, NOW), Ok(claims.clone()));
    assert_eq!(keys.remembered(), 1);

    // Remembered, it gives the same answers, expiry included; clones share what is remembered.
    let clone = keys.clone();
    assert_eq!(clone.open(&token, NOW), Ok(claims.clone()));
    assert_eq!(clone.open(&token, EXP - 1), Ok(claims));
    assert_eq!(clone.open(&token, EXP), Err(TokenError::Expired));
    assert_eq!(
        EndpointKeys::single(key(2)).open(&token, NOW),
        Err(TokenError::WrongKeyOrTampered),
        "other keys know nothing of it"
    );

    // Any other spelling is decrypted, refused and not remembered.
    for index in "v2.local.".len()..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).expect("ascii");
        assert!(keys.open(&altered, NOW).is_err(), "character {index}");
    }
    assert!(keys.open(&format!("{token}A"), NOW).is_err());
    assert!(keys.open(&token[..token.len() - 1], NOW).is_err());
    assert_eq!(keys.remembered(), 1);
}

#[test]
fn changing_any_character_or_any_byte_breaks_the_token() {
    let keys = EndpointKeys::single(key(1));
    let token = keys
        .seal(&claims("alice@example.test/phone"))
        .expect("seals");
    for index in 0..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).expect("ascii");
        assert!(keys.open(&altered, NOW).is_err(), "character {index}");
    }
    let raw = URL_SAFE_NO_PAD
        .decode(&token["v2.local.".len()..])
        .expect("base64url");
    for index in 0..raw.len() {
        let mut altered = raw.clone();
        altered[index] ^= 0x01;
        let altered = format!("v2.local.{}", URL_SAFE_NO_PAD.encode(altered));
        assert_eq!(
            keys.open(&altered, NOW),
            Err(TokenError::WrongKeyOrTampered),
            "byte {index}"
        );
    }
}

#[test]
fn malformed_tokens_are_told_apart_from_foreign_ones() {
    let keys = EndpointKeys::single(key(1));
    let token = keys
        .seal(&claims("alice@example.test/phone"))
        .expect("seals");
    let body = &token["v2.local.".len()..];
    let raw = URL_SAFE_NO_PAD.decode(body).expect("base64url");
    for text in [
        String::new(),
        "v2.local.".to_owned(),
        "v2.local".to_owned(),
        format!("v1.local.{body}"),
        format!("v2.public.{body}"),
        format!("V2.LOCAL.{body}"),
        format!("v2.local..{body}"),
        format!("{token}."),
        format!("{token}.e30"),
        format!("v2.local.+{}", &body[1..]),
        format!("v2.local.{}/", &body[..body.len() - 1]),
        format!("v2.local.{body}="),
        format!("v2.local.{}", &body[..10]),
        format!("v2.local.{}", URL_SAFE_NO_PAD.encode([0u8; 39])),
        format!("v2.local.{}!", &body[..body.len() - 1]),
        format!(" {token}"),
        "x".repeat(MAX_TOKEN_LEN + 1),
        format!("{token}{}", "A".repeat(MAX_TOKEN_LEN)),
    ] {
        assert_eq!(
            keys.open(&text, NOW),
            Err(TokenError::Malformed),
            "{text:?}"
        );
    }
    // Long enough and well-formed but not sealed by any configured key.
    for text in [
        format!("v2.local.{}", URL_SAFE_NO_PAD.encode([0u8; 40])),
        format!("v2.local.{}", URL_SAFE_NO_PAD.encode([0u8; 200])),
        format!("v2.local.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 3])),
    ] {
        assert_eq!(
            keys.open(&text, NOW),
            Err(TokenError::WrongKeyOrTampered),
            "{text:?}"
        );
    }
}

#[test]
fn authentic_plaintexts_that_are_not_our_claims_are_malformed() {
    let keys = EndpointKeys::single(key(1));
    let ok_ids = format!(r#""application":"{APPLICATION}","instance":"{INSTANCE}""#);
    for plaintext in [
        String::new(),
        "not json".to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        "{}".to_owned(),
        format!(r#"{{"exp":{EXP},{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c",{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":"{EXP}",{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":"2030-01-01T00:00:00+00:00",{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":1.9e12,{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":1900000000000.5,{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":18446744073709551615,{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":null,{ok_ids}}}"#),
        format!(r#"{{"sub":7,"exp":{EXP},{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":{EXP},"application":"short","instance":"{INSTANCE}"}}"#),
        format!(r#"{{"sub":"a@b/c","exp":{EXP},"application":"{APPLICATION}","instance":5}}"#),
        format!(r#"{{"sub":"a@b/c","sub":"d@e/f","exp":{EXP},{ok_ids}}}"#),
        format!(r#"{{"sub":"a@b/c","exp":{EXP},{ok_ids}"#),
        format!("{}{}", "[".repeat(3000), "]".repeat(3000)),
    ] {
        let token = seal_raw(1, &plaintext);
        assert_eq!(
            keys.open(&token, NOW),
            Err(TokenError::Malformed),
            "{plaintext:?}"
        );
    }
}

#[test]
fn a_negative_or_zero_exp_is_merely_expired() {
    let keys = EndpointKeys::single(key(1));
    for exp in ["-1", "0", "-9223372036854775808"] {
        let token = seal_raw(
            1,
            &format!(
                r#"{{"sub":"a@b/c","exp":{exp},"application":"{APPLICATION}","instance":"{INSTANCE}"}}"#
            ),
        );
        assert_eq!(keys.open(&token, NOW), Err(TokenError::Expired), "{exp}");
    }
}

#[test]
fn extra_claims_and_another_field_order_are_accepted() {
    let keys = EndpointKeys::single(key(1));
    let token = seal_raw(
        1,
        &format!(
            r#"{{ "instance":"{INSTANCE}", "jti":"x", "exp":{EXP}, "application":"{APPLICATION}", "sub":"a@b/c" }}"#
        ),
    );
    assert_eq!(keys.open(&token, NOW), Ok(claims("a@b/c")));
}

/// Thousands of random and mutated inputs: none panics, none opens.
#[test]
fn random_input_never_panics_and_never_opens() {
    // xorshift64*: deterministic, so a failure is reproducible.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let keys = EndpointKeys::new(vec![key(1), key(2)]).expect("two keys");
    let valid = keys
        .seal(&claims("alice@example.test/phone"))
        .expect("seals");
    let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \0";
    for round in 0..3000 {
        let len = (next() % 700) as usize;
        let candidate = match round % 4 {
            0 => (0..len)
                .map(|_| charset[(next() % charset.len() as u64) as usize] as char)
                .collect::<String>(),
            1 => {
                let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                format!("v2.local.{}", URL_SAFE_NO_PAD.encode(raw))
            }
            2 => {
                let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                String::from_utf8_lossy(&raw).into_owned()
            }
            _ => {
                let mut bytes = valid.clone().into_bytes();
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = charset[(next() % charset.len() as u64) as usize];
                if round % 8 == 3 {
                    bytes.truncate((next() % bytes.len() as u64) as usize);
                }
                String::from_utf8(bytes).expect("ascii")
            }
        };
        if candidate == valid {
            continue;
        }
        assert!(keys.open(&candidate, NOW).is_err(), "{candidate:?}");
    }
}

#[test]
fn a_token_never_exceeds_the_limit_it_is_opened_with() {
    let keys = EndpointKeys::single(key(1));
    let fixed = claims("").to_json().len();
    // Find the longest owner whose token still fits, then one byte more.
    let longest = (0..MAX_TOKEN_LEN)
        .rev()
        .find(|owner| paseto::sealed_len(fixed + owner) <= MAX_TOKEN_LEN)
        .expect("some owner fits");
    let fits = claims(&"a".repeat(longest));
    let token = keys.seal(&fits).expect("fits");
    assert!(token.len() <= MAX_TOKEN_LEN);
    assert_eq!(keys.open(&token, NOW), Ok(fits));
    assert!(matches!(
        keys.seal(&claims(&"a".repeat(longest + 1))),
        Err(SealError::TooLong { len }) if len > MAX_TOKEN_LEN
    ));
    // JSON escaping counts: quotes double in length.
    assert!(keys.seal(&claims(&"\"".repeat(longest / 2 + 1))).is_err());
}

#[test]
fn keys_come_from_standard_base64_of_32_bytes() {
    let text = "jDfGXnfoC3JTs23VHxvhI/d8BU5VP9MEDrg4H/a0hcE=";
    let parsed = EndpointKey::from_base64(text).expect("valid key");
    assert_eq!(parsed.to_base64(), text);
    assert_eq!(EndpointKey::from_base64(&format!("{text}\n")), Ok(parsed));
    assert_eq!(
        EndpointKey::from_base64("jDfGXnfoC3JTs23VHxvhI_d8BU5VP9MEDrg4H_a0hcE="),
        Err(EndpointKeyError::NotBase64)
    );
    assert_eq!(
        EndpointKey::from_base64("c2hvcnQ="),
        Err(EndpointKeyError::WrongLength { decoded: 5 })
    );
    assert_eq!(
        EndpointKey::from_base64(""),
        Err(EndpointKeyError::WrongLength { decoded: 0 })
    );
    assert!(matches!(
        EndpointKeys::new(Vec::new()),
        Err(EndpointKeyError::NoKey)
    ));
}

#[test]
fn generated_keys_differ_and_round_trip_through_base64() {
    let first = EndpointKey::generate();
    let second = EndpointKey::generate();
    assert_ne!(first, second);
    assert_eq!(EndpointKey::from_base64(&first.to_base64()), Ok(first));
}

#[test]
fn keys_are_never_printed() {
    let text = "jDfGXnfoC3JTs23VHxvhI/d8BU5VP9MEDrg4H/a0hcE=";
    let key = EndpointKey::from_base64(text).expect("valid key");
    let keys = EndpointKeys::new(vec![key.clone(), EndpointKey::generate()]).expect("keys");
    for printed in [
        format!("{key:?}"),
        format!("{keys:?}"),
        format!("{keys:#?}"),
    ] {
        assert!(
            !printed.contains("jDfG") && !printed.contains("140"),
            "{printed}"
        );
    }
    assert_eq!(format!("{keys:?}"), "EndpointKeys(2 keys)");
}

/// up's plaintext, byte for byte, is what pushgate writes for the same claims: the tokens
/// differ only by their random nonce.
#[test]
fn up_s_plaintexts_are_exactly_what_pushgate_writes() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/data/up_vectors.json")).expect("json");
    let tokens = vectors["endpoint_tokens"].as_array().expect("tokens");
    assert!(!tokens.is_empty());
    for vector in tokens {
        let key = EndpointKey::from_base64(vector["key"].as_str().expect("key")).expect("key");
        let token = vector["token"].as_str().expect("token");
        let plaintext = paseto::open([&key.0], token).expect("opens");
        let claims = EndpointKeys::single(key).open(token, NOW).expect("opens");
        assert_eq!(
            String::from_utf8(plaintext).expect("utf-8"),
            String::from_utf8(claims.to_json()).expect("utf-8")
        );
    }
}

#[test]
fn inspect_names_the_key_that_opens_and_ignores_expiry() {
    let old = EndpointKeys::single(key(1));
    let token = old
        .seal(&claims("alice@example.test/phone"))
        .expect("seals");
    let rotated = EndpointKeys::new(vec![key(2), key(1)]).expect("two keys");
    let (index, opened) = rotated.inspect(&token).expect("opens");
    assert_eq!(index, 1);
    assert_eq!(opened, claims("alice@example.test/phone"));
    // Past its expiry `open` refuses it; `inspect` still says what it holds.
    assert_eq!(rotated.open(&token, EXP + 1), Err(TokenError::Expired));
    assert!(rotated.inspect(&token).is_ok());
    let foreign = EndpointKeys::single(key(3));
    assert_eq!(foreign.inspect(&token), Err(TokenError::WrongKeyOrTampered));
    assert_eq!(foreign.inspect("v2.local.!"), Err(TokenError::Malformed));
}
