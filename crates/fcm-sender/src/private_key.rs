//! The service account's private key, checked for shape only: a PEM `PRIVATE KEY` block holding
//! a DER PKCS#8 `PrivateKeyInfo` for an RSA key (what RS256 signing of the OAuth2 grant needs).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const END: &str = "-----END PRIVATE KEY-----";

/// DER of the `rsaEncryption` object identifier, 1.2.840.113549.1.1.1 (RFC 8017 appendix C).
const RSA_ENCRYPTION_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

// DER universal tags (X.690 §8).
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// A PKCS#8 RSA private key in PEM form. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem {
    pem: String,
    der: Vec<u8>,
}

/// What is wrong with a private key. The messages never quote the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyProblem {
    /// The text is not one `-----BEGIN PRIVATE KEY-----` … `-----END PRIVATE KEY-----` block.
    #[error("is not a PEM block from `{BEGIN}` to `{END}`")]
    NotPem,
    /// A PKCS#1 `RSA PRIVATE KEY` block; Google's key files hold PKCS#8.
    #[error(
        "is a PKCS#1 `RSA PRIVATE KEY`; convert it with `openssl pkcs8 -topk8 -nocrypt` to a `PRIVATE KEY`"
    )]
    Pkcs1,
    /// A password-protected key, which pushgate cannot unlock.
    #[error("is encrypted; pushgate needs an unencrypted `PRIVATE KEY`")]
    Encrypted,
    /// The text between the markers is not base64.
    #[error("holds text between its PEM markers that is not base64")]
    NotBase64,
    /// The decoded bytes are not a DER PKCS#8 `PrivateKeyInfo`.
    #[error("is not a DER PKCS#8 private key")]
    NotPkcs8,
    /// A PKCS#8 key of another algorithm (EC, Ed25519, …); FCM's OAuth2 grant is signed RS256.
    #[error("is not an RSA key; the OAuth2 grant is signed with RS256")]
    NotRsa,
}

impl PrivateKeyPem {
    /// Checks `pem`'s shape and keeps it.
    pub fn parse(pem: &str) -> Result<Self, PrivateKeyProblem> {
        let text = pem.trim();
        let Some(inner) = text
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(END))
        else {
            return Err(if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
                PrivateKeyProblem::Pkcs1
            } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
                PrivateKeyProblem::Encrypted
            } else {
                PrivateKeyProblem::NotPem
            });
        };
        let body: String = inner.split_ascii_whitespace().collect();
        if body.contains('-') {
            // A second block, or stray markers inside the first.
            return Err(PrivateKeyProblem::NotPem);
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| PrivateKeyProblem::NotBase64)?;
        check_pkcs8_rsa(&der)?;
        Ok(Self {
            pem: pem.to_owned(),
            der,
        })
    }

    /// The PEM text as read, for a signer that takes PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The DER `PrivateKeyInfo`, for a signer that takes PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(…)")
    }
}

/// RFC 5208 §5: `PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm
/// AlgorithmIdentifier, privateKey OCTET STRING, … }`, and the algorithm is `rsaEncryption`.
fn check_pkcs8_rsa(der: &[u8]) -> Result<(), PrivateKeyProblem> {
    let (info, rest) = element(der, SEQUENCE)?;
    if !rest.is_empty() {
        return Err(PrivateKeyProblem::NotPkcs8);
    }
    let (_version, info) = element(info, INTEGER)?;
    let (algorithm, info) = element(info, SEQUENCE)?;
    let (oid, _parameters) = element(algorithm, OBJECT_IDENTIFIER)?;
    let (key, _attributes) = element(info, OCTET_STRING)?;
    if oid != RSA_ENCRYPTION_OID {
        return Err(PrivateKeyProblem::NotRsa);
    }
    // RFC 8017 A.1.2: the RSAPrivateKey inside is itself a SEQUENCE.
    let (_, after) = element(key, SEQUENCE)?;
    if !after.is_empty() {
        return Err(PrivateKeyProblem::NotPkcs8);
    }
    Ok(())
}

/// Splits one DER element with tag `tag` off the front of `bytes`: (its content, the rest).
fn element(bytes: &[u8], tag: u8) -> Result<(&[u8], &[u8]), PrivateKeyProblem> {
    let bad = PrivateKeyProblem::NotPkcs8;
    let (&found, bytes) = bytes.split_first().ok_or(bad)?;
    if found != tag {
        return Err(bad);
    }
    let (&first, mut bytes) = bytes.split_first().ok_or(bad)?;
    // X.690 §8.1.3: short form below 0x80, else the low bits count the length bytes.
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || bytes.len() < count {
            return Err(bad);
        }
        let (len_bytes, rest) = bytes.split_at(count);
        bytes = rest;
        len_bytes
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte))
    };
    if bytes.len() < len {
        return Err(bad);
    }
    Ok(bytes.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PKCS1: &str = include_str!("../tests/data/test-rsa-pkcs1-key.pem");
    const EC: &str = include_str!("../tests/data/test-ec-key.pem");

    fn rsa_pkcs8() -> String {
        let account: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/service-account.json"))
                .expect("fixture is JSON");
        account["private_key"]
            .as_str()
            .expect("fixture has a key")
            .to_owned()
    }

    #[test]
    fn a_pkcs8_rsa_key_is_accepted_and_kept_verbatim() {
        let pem = rsa_pkcs8();
        let key = PrivateKeyPem::parse(&pem).expect("valid key");
        assert_eq!(key.pem(), pem);
        assert_eq!(key.pkcs8_der().first(), Some(&SEQUENCE));
    }

    #[test]
    fn crlf_line_ends_and_surrounding_space_are_fine() {
        let pem = format!("\n  {}  \n", rsa_pkcs8().replace('\n', "\r\n"));
        assert!(PrivateKeyPem::parse(&pem).is_ok());
    }

    #[test]
    fn other_key_forms_are_named() {
        assert_eq!(
            PrivateKeyPem::parse(RSA_PKCS1),
            Err(PrivateKeyProblem::Pkcs1)
        );
        assert_eq!(PrivateKeyPem::parse(EC), Err(PrivateKeyProblem::NotRsa));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(
            PrivateKeyPem::parse(encrypted),
            Err(PrivateKeyProblem::Encrypted)
        );
    }

    #[test]
    fn broken_blocks_are_refused() {
        let pem = rsa_pkcs8();
        let truncated = format!("{}\n{END}", &pem[..pem.len() / 2]);
        let doubled = format!("{pem}{pem}");
        for (text, problem) in [
            ("", PrivateKeyProblem::NotPem),
            ("not a key", PrivateKeyProblem::NotPem),
            (&pem[..pem.len() - 10], PrivateKeyProblem::NotPem),
            (doubled.as_str(), PrivateKeyProblem::NotPem),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
                PrivateKeyProblem::NotBase64,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----",
                PrivateKeyProblem::NotPkcs8,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n\n-----END PRIVATE KEY-----",
                PrivateKeyProblem::NotPkcs8,
            ),
        ] {
            assert_eq!(PrivateKeyPem::parse(text), Err(problem), "{text:?}");
        }
        assert!(matches!(
            PrivateKeyPem::parse(&truncated),
            Err(PrivateKeyProblem::NotBase64 | PrivateKeyProblem::NotPkcs8)
        ));
    }

    #[test]
    fn der_lengths_never_read_past_the_end() {
        for der in [
            &[][..],
            &[SEQUENCE],
            &[SEQUENCE, 0x85, 1, 2, 3, 4, 5],
            &[SEQUENCE, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[SEQUENCE, 0x80],
            &[SEQUENCE, 0x05, INTEGER, 0x01, 0x00],
            &[SEQUENCE, 0x03, INTEGER, 0x01, 0x00, 0x00],
        ] {
            assert_eq!(
                check_pkcs8_rsa(der),
                Err(PrivateKeyProblem::NotPkcs8),
                "{der:?}"
            );
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let pem = rsa_pkcs8();
        let key = PrivateKeyPem::parse(&pem).expect("valid key");
        assert_eq!(format!("{key:?}"), "PrivateKeyPem(…)");
    }
}
