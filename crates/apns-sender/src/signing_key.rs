//! The team's APNs signing key: the `.p8` file Apple hands out once (a PEM `PRIVATE KEY` block
//! holding a PKCS#8 P-256 key), with its 10-character key id and the team id it belongs to.

use std::fmt;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::{self, PemObject as _};

/// What is wrong with a signing key or its ids. The messages never quote the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyProblem {
    /// The file could not be read.
    #[error("cannot be read: {0}")]
    Unreadable(String),
    /// No `-----BEGIN PRIVATE KEY-----` block.
    #[error(
        "holds no `-----BEGIN PRIVATE KEY-----` block (an APNs auth key file, AuthKey_<key id>.p8, holds one)"
    )]
    NotPem,
    /// A SEC1 `EC PRIVATE KEY` block instead of PKCS#8.
    #[error(
        "is a SEC1 `EC PRIVATE KEY`; convert it with `openssl pkcs8 -topk8 -nocrypt` to a `PRIVATE KEY`"
    )]
    Sec1,
    /// The block is not valid PEM (bad base64, unterminated).
    #[error("is not valid PEM: {0}")]
    BadPem(String),
    /// The key is not a P-256 (ES256) private key.
    #[error("is not a P-256 private key, which ES256 signing needs: {0}")]
    NotP256(String),
    /// The key id is not 10 letters and digits.
    #[error("{0:?} is not the 10 letters and digits Apple gives a key")]
    BadKeyId(String),
    /// The team id is not 10 letters and digits.
    #[error("{0:?} is not the 10 letters and digits of an Apple developer team")]
    BadTeamId(String),
}

/// A usable signing key: the key pair, its key id (`kid`) and the team id (`iss`). Never
/// printed.
pub struct SigningKey {
    pub(crate) key: EcdsaKeyPair,
    pub(crate) rng: SystemRandom,
    pub(crate) key_id: String,
    pub(crate) team_id: String,
}

impl SigningKey {
    /// Parses a `.p8` key's text and checks the ids.
    pub fn from_pem(pem: &str, key_id: &str, team_id: &str) -> Result<Self, SigningKeyProblem> {
        if !is_apple_id(key_id) {
            return Err(SigningKeyProblem::BadKeyId(key_id.to_owned()));
        }
        if !is_apple_id(team_id) {
            return Err(SigningKeyProblem::BadTeamId(team_id.to_owned()));
        }
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|error| match error {
                pem::Error::NoItemsFound if pem.contains("-----BEGIN EC PRIVATE KEY-----") => {
                    SigningKeyProblem::Sec1
                }
                pem::Error::NoItemsFound => SigningKeyProblem::NotPem,
                other => SigningKeyProblem::BadPem(other.to_string()),
            })?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der())
                .map_err(|rejected| SigningKeyProblem::NotP256(rejected.to_string()))?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
        })
    }

    /// Reads and parses the `.p8` file at `path`.
    pub fn from_file(path: &Path, key_id: &str, team_id: &str) -> Result<Self, SigningKeyProblem> {
        let pem = std::fs::read_to_string(path)
            .map_err(|error| SigningKeyProblem::Unreadable(error.to_string()))?;
        Self::from_pem(&pem, key_id, team_id)
    }

    /// The key id (`kid`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The team id (`iss`).
    pub fn team_id(&self) -> &str {
        &self.team_id
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

/// Apple's key ids and team ids: 10 ASCII letters and digits.
fn is_apple_id(id: &str) -> bool {
    id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A P-256 key made for these tests only (`openssl genpkey -algorithm EC -pkeyopt
    // ec_paramgen_curve:P-256`).
    const P256: &str = include_str!("../tests/data/AuthKey_TESTKEY001.p8");
    const RSA: &str = include_str!("../tests/data/rsa-key.pem");

    #[test]
    fn a_p8_key_with_its_ids_is_taken() {
        let key = SigningKey::from_pem(P256, "TESTKEY001", "TESTTEAM01").expect("usable");
        assert_eq!(key.key_id(), "TESTKEY001");
        assert_eq!(key.team_id(), "TESTTEAM01");
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn every_bad_key_or_id_is_named() {
        let problem = |pem: &str, kid: &str, team: &str| {
            SigningKey::from_pem(pem, kid, team).expect_err("refused")
        };
        assert_eq!(
            problem(P256, "SHORT", "TESTTEAM01"),
            SigningKeyProblem::BadKeyId("SHORT".into())
        );
        assert_eq!(
            problem(P256, "TESTKEY001", "TEAM-ID-01"),
            SigningKeyProblem::BadTeamId("TEAM-ID-01".into())
        );
        assert_eq!(
            problem("not a key", "TESTKEY001", "TESTTEAM01"),
            SigningKeyProblem::NotPem
        );
        assert_eq!(
            problem(
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
                "TESTKEY001",
                "TESTTEAM01"
            ),
            SigningKeyProblem::Sec1
        );
        assert!(matches!(
            problem(
                "-----BEGIN PRIVATE KEY-----\n%%%%\n-----END PRIVATE KEY-----\n",
                "TESTKEY001",
                "TESTTEAM01"
            ),
            SigningKeyProblem::BadPem(_)
        ));
        assert!(matches!(
            problem(RSA, "TESTKEY001", "TESTTEAM01"),
            SigningKeyProblem::NotP256(_)
        ));
    }
}
