//! PASETO `v2.local` without a footer: the one token format up (jpaseto) writes.
//!
//! Only the byte layout lives here; what the message means is `endpoint_token`'s business.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blake2::Blake2bMac;
use blake2::digest::consts::U24;
use blake2::digest::{KeyInit as _, Mac as _};
use chacha20poly1305::aead::Aead as _;
use chacha20poly1305::aead::Payload;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The header every token starts with (PASETO v2 §local).
pub(crate) const HEADER: &str = "v2.local.";
/// Length of the XChaCha20 nonce, and of the random key it is derived with.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag after the ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// Why a token did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Not `v2.local.` + unpadded base64url of at least nonce and tag, or it has a footer.
    Malformed,
    /// No key authenticates it.
    NotAuthentic,
}

/// The encrypted length limit was passed (the AEAD refuses over 2^38 bytes; never reached
/// with the token length limit, but the type says it can happen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SealFailure;

/// Pre-authentication encoding (PASETO §PAE): the piece count, then each piece prefixed with its
/// length, all as little-endian 64-bit integers with the top bit cleared.
fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    fn le64(n: usize) -> [u8; 8] {
        // usize always fits in u64 on supported targets; the mask is the spec's MSB clearing.
        ((n as u64) & (u64::MAX >> 1)).to_le_bytes()
    }
    let mut out = Vec::with_capacity(8 + pieces.iter().map(|p| 8 + p.len()).sum::<usize>());
    out.extend_from_slice(&le64(pieces.len()));
    for piece in pieces {
        out.extend_from_slice(&le64(piece.len()));
        out.extend_from_slice(piece);
    }
    out
}

/// The associated data of a footer-less v2.local token.
fn associated_data(nonce: &[u8]) -> Vec<u8> {
    pae(&[HEADER.as_bytes(), nonce, b""])
}

/// Seals `message` under `key`, deriving the nonce from `nonce_key` as PASETO v2 prescribes:
/// `nonce = BLAKE2b(message, key = nonce_key, outlen = 24)`. Public callers use [`seal`]; the
/// fixed `nonce_key` is for the specification's test vectors.
pub(crate) fn seal_with_nonce_key(
    key: &[u8; 32],
    message: &[u8],
    nonce_key: &[u8; NONCE_LEN],
) -> Result<String, SealFailure> {
    // A 24-byte key is within BLAKE2b's 1..=64 byte key range, so this cannot fail.
    let mut mac = Blake2bMac::<U24>::new_from_slice(nonce_key).map_err(|_| SealFailure)?;
    mac.update(message);
    let nonce: [u8; NONCE_LEN] = mac.finalize().into_bytes().into();

    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let aad = associated_data(&nonce);
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: message,
                aad: &aad,
            },
        )
        .map_err(|_| SealFailure)?;

    let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&sealed);
    Ok(format!("{HEADER}{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Seals `message` under `key` with a fresh random nonce key, so two seals of the same message
/// differ (as with up).
pub(crate) fn seal(key: &[u8; 32], message: &[u8]) -> Result<String, SealFailure> {
    seal_with_nonce_key(key, message, &rand::random())
}

/// The length a sealed `message_len`-byte message will have as a token.
pub(crate) fn sealed_len(message_len: usize) -> usize {
    let raw = NONCE_LEN
        .saturating_add(message_len)
        .saturating_add(TAG_LEN);
    // Unpadded base64: 4 characters per 3 bytes, rounded up.
    HEADER
        .len()
        .saturating_add(raw / 3 * 4)
        .saturating_add(match raw % 3 {
            0 => 0,
            1 => 2,
            _ => 3,
        })
}

/// Opens `token` with the first of `keys` that authenticates it and returns the message.
pub(crate) fn open<'k>(
    keys: impl IntoIterator<Item = &'k [u8; 32]>,
    token: &str,
) -> Result<Vec<u8>, OpenFailure> {
    let body = token.strip_prefix(HEADER).ok_or(OpenFailure::Malformed)?;
    // up never writes a footer, so a token with one (even an empty one after a trailing dot)
    // was not issued by up or by us.
    if body.contains('.') {
        return Err(OpenFailure::Malformed);
    }
    // The strict decoder refuses padding and non-zero trailing bits, so each token has exactly
    // one spelling (revocations are keyed by the token string).
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| OpenFailure::Malformed)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenFailure::Malformed);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenFailure::Malformed)?;
    let aad = associated_data(&nonce);
    keys.into_iter()
        .find_map(|key| {
            XChaCha20Poly1305::new(&(*key).into())
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()
        })
        .ok_or(OpenFailure::NotAuthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex<const N: usize>(hex: &str) -> [u8; N] {
        let digits: Vec<u8> = hex
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => panic!("not hex"),
            })
            .collect();
        let bytes: Vec<u8> = digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect();
        bytes.try_into().expect("length")
    }

    const SPEC_KEY: &str = "707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f";
    const SIGNED: &str = r#"{"data":"this is a signed message","exp":"2019-01-01T00:00:00+00:00"}"#;
    const SECRET: &str = r#"{"data":"this is a secret message","exp":"2019-01-01T00:00:00+00:00"}"#;
    const NONCE_KEY_2: &str = "45742c976d684ff84ebdc0de59809a97cda2f64c84fda19b";

    /// The PASETO v2 specification's footer-less local vectors 2-E-1 … 2-E-4: key, nonce key
    /// (the random bytes BLAKE2b is keyed with), message, token.
    fn spec_vectors() -> Vec<([u8; 32], [u8; 24], &'static str, &'static str)> {
        let key = unhex::<32>(SPEC_KEY);
        vec![
            (
                key,
                [0; 24],
                SIGNED,
                "v2.local.97TTOvgwIxNGvV80XKiGZg_kD3tsXM_-qB4dZGHOeN1cTkgQ4PnW8888l802W8d9AvEGnoNBY3BnqHORy8a5cC8aKpbA0En8XELw2yDk2f1sVODyfnDbi6rEGMY3pSfCbLWMM2oHJxvlEl2XbQ",
            ),
            (
                key,
                [0; 24],
                SECRET,
                "v2.local.CH50H-HM5tzdK4kOmQ8KbIvrzJfjYUGuu5Vy9ARSFHy9owVDMYg3-8rwtJZQjN9ABHb2njzFkvpr5cOYuRyt7CRXnHt42L5yZ7siD-4l-FoNsC7J2OlvLlIwlG06mzQVunrFNb7Z3_CHM0PK5w",
            ),
            (
                key,
                unhex::<24>(NONCE_KEY_2),
                SIGNED,
                "v2.local.5K4SCXNhItIhyNuVIZcwrdtaDKiyF81-eWHScuE0idiVqCo72bbjo07W05mqQkhLZdVbxEa5I_u5sgVk1QLkcWEcOSlLHwNpCkvmGGlbCdNExn6Qclw3qTKIIl5-O5xRBN076fSDPo5xUCPpBA",
            ),
            (
                key,
                unhex::<24>(NONCE_KEY_2),
                SECRET,
                "v2.local.pvFdDeNtXxknVPsbBCZF6MGedVhPm40SneExdClOxa9HNR8wFv7cu1cB0B4WxDdT6oUc2toyLR6jA6sc-EUM5ll1EkeY47yYk6q8m1RCpqTIzUrIu3B6h232h62DPbIxtjGvNRAwsLK7LcV8oQ",
            ),
        ]
    }

    #[test]
    fn sealing_reproduces_the_specification_vectors() {
        for (key, nonce_key, message, token) in spec_vectors() {
            let sealed = seal_with_nonce_key(&key, message.as_bytes(), &nonce_key);
            assert_eq!(sealed.as_deref(), Ok(token), "vector for {message}");
        }
    }

    #[test]
    fn opening_the_specification_vectors_gives_the_message() {
        for (key, _, message, token) in spec_vectors() {
            assert_eq!(open([&key], token), Ok(message.as_bytes().to_vec()));
        }
    }

    #[test]
    fn pae_matches_the_specification_examples() {
        // PASETO §PAE: PAE([]) and PAE([""]) and PAE(["test"]).
        assert_eq!(pae(&[]), [0u8; 8]);
        assert_eq!(
            pae(&[b""]),
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let mut test = vec![1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0];
        test.extend_from_slice(b"test");
        assert_eq!(pae(&[b"test"]), test);
    }

    #[test]
    fn sealed_len_predicts_the_token_length() {
        let key = [7u8; 32];
        for len in 0..64 {
            let message = vec![b'x'; len];
            let token = seal(&key, &message).expect("small message seals");
            assert_eq!(token.len(), sealed_len(len), "message of {len} bytes");
        }
    }

    #[test]
    fn a_footer_is_refused_even_an_empty_one() {
        let key = [7u8; 32];
        let token = seal(&key, b"{}").expect("seals");
        assert_eq!(
            open([&key], &format!("{token}.")),
            Err(OpenFailure::Malformed)
        );
        assert_eq!(
            open([&key], &format!("{token}.Zm9vdGVy")),
            Err(OpenFailure::Malformed)
        );
    }

    #[test]
    fn a_non_canonical_spelling_is_refused() {
        let key = [7u8; 32];
        let token = seal(&key, b"{}").expect("seals");
        // 24 + 2 + 16 = 42 bytes = 56 characters exactly: a padded form adds nothing, so
        // append padding to a message whose length leaves a remainder instead.
        let token3 = seal(&key, b"{}x").expect("seals");
        assert_eq!(
            open([&key], &format!("{token3}=")),
            Err(OpenFailure::Malformed)
        );
        assert_eq!(
            open([&key], &format!("{token}==")),
            Err(OpenFailure::Malformed)
        );
        // Flipping the unused low bits of the last character keeps the bytes but changes the
        // spelling; the strict decoder refuses it.
        let last = token3.chars().last().expect("non-empty");
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).expect("base64url character");
        let sibling = alphabet.as_bytes()[index ^ 1] as char;
        let respelled = format!("{}{sibling}", &token3[..token3.len() - 1]);
        assert_eq!(open([&key], &respelled), Err(OpenFailure::Malformed));
    }
}
