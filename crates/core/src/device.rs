//! The device hash: the only thing about a user that ever reaches Google or Apple.

use std::fmt;

use sha1::{Digest, Sha1};

/// The push service a device registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushService {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
}

impl PushService {
    /// The name stored in the database and used in command nodes (`fcm`, `apns`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::Apns => "apns",
        }
    }

    /// Parses a stored or command-node name, ignoring ASCII case (p2 upper-cases it).
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("fcm") {
            Some(Self::Fcm)
        } else if name.eq_ignore_ascii_case("apns") {
            Some(Self::Apns)
        } else {
            None
        }
    }
}

impl PushService {
    /// Whether `token` has the shape of this service's device tokens, so that a token that
    /// cannot be one is refused before it reaches Google or Apple (or a log line).
    ///
    /// - APNs: hex (Apple writes it lowercase, either case is taken), an even count of digits,
    ///   at least 32 bytes' worth and at most [`MAX_APNS_TOKEN_HEX`]: tokens are 32 bytes
    ///   today, and Apple warns that they may grow.
    /// - FCM: 1 to [`MAX_FCM_TOKEN_LEN`] characters of the URL-safe alphabet FCM registration
    ///   tokens use (`A-Z a-z 0-9 - _ :`).
    pub fn accepts_token(self, token: &str) -> bool {
        match self {
            Self::Apns => {
                (64..=MAX_APNS_TOKEN_HEX).contains(&token.len())
                    && token.len().is_multiple_of(2)
                    && token.bytes().all(|b| b.is_ascii_hexdigit())
            }
            Self::Fcm => {
                (1..=MAX_FCM_TOKEN_LEN).contains(&token.len())
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
            }
        }
    }
}

/// The most hex digits an APNs device token is taken with (200 bytes).
pub const MAX_APNS_TOKEN_HEX: usize = 400;

/// The longest FCM registration token taken (they are about 160 characters).
pub const MAX_FCM_TOKEN_LEN: usize = 4096;

impl fmt::Display for PushService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase hex SHA-1 of `bare JID + NUL + device id`, exactly as p2 and Conversations compute
/// it (docs/protocol.md B §1.3, §3.2). 40 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceHash(String);

impl DeviceHash {
    /// Hashes a bare JID in wire (escaped, normalised) form and a device id.
    pub fn compute(bare_jid: &str, device_id: &str) -> Self {
        let mut sha1 = Sha1::new();
        sha1.update(bare_jid.as_bytes());
        sha1.update([0u8]);
        sha1.update(device_id.as_bytes());
        Self(hex(&sha1.finalize()))
    }

    /// Accepts a stored hash: exactly 40 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let valid = hex.len() == 40 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(hex.to_owned()))
    }

    /// The 40 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The FCM `collapse_key`: the first 6 hex characters, as p2 sends it.
    pub fn collapse_key(&self) -> &str {
        &self.0[..6]
    }
}

impl fmt::Debug for DeviceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The full hash links a phone to an account across logs; the prefix is enough to debug.
        write!(f, "DeviceHash({}…)", &self.0[..6])
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the shared test vectors (p2's README example first).
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "xiaomia1@jabber.de",
            "92afd7a91cdba9a0",
            "ec164939a8485ee6b7f7871071a11c7bb18aead5",
        ),
        (
            "alice@example.test",
            "0123456789abcdef",
            "9f99d323981c8c2c9ce71c1fb91bd7f9256073c2",
        ),
        (
            "ünïcode@example.test",
            "deadbeefdeadbeef",
            "d058bf3f4bf8aff20dcd254ff7823593f1879632",
        ),
    ];

    #[test]
    fn device_hash_matches_p2_and_conversations() {
        for (jid, device, expected) in VECTORS {
            let hash = DeviceHash::compute(jid, device);
            assert_eq!(hash.as_str(), *expected, "{jid}");
            assert_eq!(hash.collapse_key(), &expected[..6]);
        }
    }

    #[test]
    fn from_hex_accepts_only_lowercase_40() {
        assert!(DeviceHash::from_hex("ec164939a8485ee6b7f7871071a11c7bb18aead5").is_some());
        assert!(DeviceHash::from_hex("EC164939A8485EE6B7F7871071A11C7BB18AEAD5").is_none());
        assert!(DeviceHash::from_hex("ec1649").is_none());
        assert!(DeviceHash::from_hex("zc164939a8485ee6b7f7871071a11c7bb18aead5").is_none());
    }

    #[test]
    fn debug_does_not_print_the_whole_hash() {
        let hash = DeviceHash::compute("a@b", "c");
        let printed = format!("{hash:?}");
        assert!(!printed.contains(hash.as_str()));
    }

    #[test]
    fn tokens_are_taken_only_in_their_service_s_shape() {
        let apns = "a1".repeat(32);
        assert!(PushService::Apns.accepts_token(&apns));
        assert!(PushService::Apns.accepts_token(&apns.to_uppercase()));
        assert!(!PushService::Apns.accepts_token(&apns[..62]), "too short");
        assert!(!PushService::Apns.accepts_token(&format!("{apns}a")), "odd");
        assert!(
            !PushService::Apns.accepts_token(&"g1".repeat(32)),
            "not hex"
        );
        assert!(
            !PushService::Apns.accepts_token(&"ab".repeat(201)),
            "too long"
        );
        let fcm = "dGVzdA:APA91bH-x_y";
        assert!(PushService::Fcm.accepts_token(fcm));
        assert!(!PushService::Fcm.accepts_token(""));
        assert!(!PushService::Fcm.accepts_token("a b"));
        assert!(!PushService::Fcm.accepts_token("<x/>"));
        assert!(!PushService::Fcm.accepts_token(&"a".repeat(4097)));
    }

    #[test]
    fn service_names_parse_in_any_case() {
        assert_eq!(PushService::parse("FCM"), Some(PushService::Fcm));
        assert_eq!(PushService::parse("apns"), Some(PushService::Apns));
        assert_eq!(PushService::parse("foo"), None);
        assert_eq!(PushService::Fcm.as_str(), "fcm");
    }
}
