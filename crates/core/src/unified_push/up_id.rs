//! The `application` and `instance` ids a UnifiedPush client registers with.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The number of bytes an id must decode to (a SHA-256 hash, as Conversations sends).
pub const UP_ID_BYTES: usize = 32;

/// Decodes what Guava's `BaseEncoding.base64()` decodes once trailing `=` are trimmed: the
/// standard alphabet, no padding, unused trailing bits ignored.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// A UnifiedPush `application` or `instance` id: standard base64 of exactly 32 bytes
/// (docs/protocol.md A.3). Kept exactly as the client sent it, because the client compares the
/// `<push/>` attributes with its own string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpId(String);

/// Why a string is not a UnifiedPush id; the XMPP side answers `bad-request` (modify).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpId {
    /// It has a character outside the standard base64 alphabet, padding in the middle, or a
    /// length no base64 text has.
    #[error("not standard base64")]
    NotBase64,
    /// It is base64 but does not decode to 32 bytes.
    #[error("decodes to {decoded} bytes instead of 32")]
    WrongLength {
        /// How many bytes it decodes to.
        decoded: usize,
    },
}

impl UpId {
    /// Accepts what up accepts (`checkSha256`, docs/protocol.md B §2.2): Guava's
    /// `base64().canDecode(v)` and a decoded length of exactly 32 bytes. Like Guava, any number
    /// of trailing `=` is trimmed first, so the 44-character padded form Conversations sends
    /// and the 43-character unpadded form are both ids.
    pub fn parse(text: &str) -> Result<Self, InvalidUpId> {
        let unpadded = text.trim_end_matches('=');
        let standard = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        if !unpadded.bytes().all(standard) {
            return Err(InvalidUpId::NotBase64);
        }
        // Guava's `isValidPaddingStartPosition`: a last group of one character holds no byte.
        let decoded = match unpadded.len() % 4 {
            0 => unpadded.len() / 4 * 3,
            2 => unpadded.len() / 4 * 3 + 1,
            3 => unpadded.len() / 4 * 3 + 2,
            _ => return Err(InvalidUpId::NotBase64),
        };
        if decoded != UP_ID_BYTES {
            return Err(InvalidUpId::WrongLength { decoded });
        }
        let mut bytes = [0u8; UP_ID_BYTES];
        match LENIENT_STANDARD.decode_slice(unpadded, &mut bytes) {
            Ok(UP_ID_BYTES) => Ok(Self(text.to_owned())),
            Ok(decoded) => Err(InvalidUpId::WrongLength { decoded }),
            Err(_) => Err(InvalidUpId::NotBase64),
        }
    }

    /// The id exactly as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UpId {
    type Err = InvalidUpId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for UpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PADDED: &str = "WFekBFu55IP9GVrRSABOPfUaPVqPjQiP/fb++/tnIoE=";

    #[test]
    fn the_padded_form_conversations_sends_is_an_id_kept_verbatim() {
        let id = UpId::parse(PADDED).expect("valid id");
        assert_eq!(id.as_str(), PADDED);
        assert_eq!(id.to_string(), PADDED);
    }

    #[test]
    fn padding_is_trimmed_like_guava() {
        let unpadded = PADDED.trim_end_matches('=');
        assert_eq!(
            UpId::parse(unpadded).map(|id| id.0),
            Ok(unpadded.to_owned())
        );
        let extra = format!("{PADDED}==");
        assert_eq!(UpId::parse(&extra).map(|id| id.0), Ok(extra.clone()));
    }

    #[test]
    fn unused_trailing_bits_are_ignored_like_guava() {
        // 'F' and 'E' differ only in bits past the 32nd byte.
        let respelled = PADDED.replace("IoE=", "IoF=");
        assert!(UpId::parse(&respelled).is_ok());
    }

    #[test]
    fn other_alphabets_and_stray_characters_are_not_base64() {
        for text in [
            PADDED.replace('/', "_"),
            PADDED.replace('+', "-"),
            format!(" {PADDED}"),
            format!("{PADDED}\n"),
            PADDED.replacen('W', "=", 1),
            "é".repeat(22),
        ] {
            assert_eq!(UpId::parse(&text), Err(InvalidUpId::NotBase64), "{text:?}");
        }
        // 41 characters: a last group of one character cannot hold a byte.
        assert_eq!(UpId::parse(&"A".repeat(41)), Err(InvalidUpId::NotBase64));
    }

    #[test]
    fn ids_of_other_lengths_are_refused() {
        assert_eq!(
            UpId::parse(""),
            Err(InvalidUpId::WrongLength { decoded: 0 })
        );
        assert_eq!(
            UpId::parse(&"A".repeat(40)),
            Err(InvalidUpId::WrongLength { decoded: 30 })
        );
        assert_eq!(
            UpId::parse(&"A".repeat(44)),
            Err(InvalidUpId::WrongLength { decoded: 33 })
        );
        assert_eq!(
            UpId::parse("ZXUuc2lhY3MuY29udmVyc2F0aW9ucw=="),
            Err(InvalidUpId::WrongLength { decoded: 22 })
        );
        assert_eq!(
            UpId::parse(&"A".repeat(100_000)),
            Err(InvalidUpId::WrongLength { decoded: 75_000 })
        );
    }

    #[test]
    fn from_str_agrees_with_parse() {
        assert_eq!(PADDED.parse::<UpId>(), UpId::parse(PADDED));
        assert_eq!("x".parse::<UpId>(), UpId::parse("x"));
    }
}
