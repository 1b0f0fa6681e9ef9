//! The account behind XEP-0357 registrations, kept only as a keyed hash.
//!
//! The limit on devices per account needs to know which registrations share an account. The
//! device hash cannot say (it mixes in the device id), and a plain hash of the bare JID could be
//! reversed by hashing a list of known JIDs. So each installation draws a random key once
//! ([`AccountKey`], kept in the database beside the rows it keys), and a registration stores
//! [`AccountTag`]: a BLAKE2b MAC of the bare JID under that key.

use std::fmt;

use blake2::Blake2bMac;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit as _, Mac as _};

use crate::device::hex;

/// The bare JID of a registering account, as the command's `from` gave it. Its `Debug` hides
/// it: a request may be logged, a JID may not.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountJid(String);

impl AccountJid {
    /// Wraps a bare JID in wire (escaped, normalised) form.
    pub fn new(bare_jid: impl Into<String>) -> Self {
        Self(bare_jid.into())
    }

    /// The bare JID.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountJid(…)")
    }
}

/// The installation's key for [`AccountTag`]s: 32 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey([u8; 32]);

impl AccountKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Reads a stored key: 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let high = hex_digit(pair[0])?;
            let low = hex_digit(pair[1])?;
            *byte = high << 4 | low;
        }
        Some(Self(key))
    }

    /// The 64 lowercase hex digits to store.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The tag of `account` under this key.
    pub fn tag(&self, account: &AccountJid) -> AccountTag {
        // A 32-byte key is always a valid BLAKE2b key; the fallback never runs.
        let Ok(mut mac) = Blake2bMac::<U16>::new_from_slice(&self.0) else {
            return AccountTag(String::new());
        };
        mac.update(account.expose().as_bytes());
        AccountTag(hex(&mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(…)")
    }
}

/// What the store keeps of a registration's account: 32 lowercase hex digits (a 128-bit MAC).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountTag(String);

impl AccountTag {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountTag({}…)", self.0.get(..6).unwrap_or_default())
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_hex_form() {
        let key = AccountKey::generate();
        let text = key.to_hex();
        assert_eq!(text.len(), 64);
        assert_eq!(AccountKey::from_hex(&text), Some(key.clone()));
        assert_eq!(AccountKey::from_hex(&text.to_uppercase()), Some(key));
        assert_eq!(AccountKey::from_hex(&text[..63]), None);
        assert_eq!(AccountKey::from_hex(&format!("{}g", &text[..63])), None);
    }

    #[test]
    fn tags_depend_on_account_and_key() {
        let key = AccountKey::from_hex(&"11".repeat(32)).expect("valid key");
        let alice = AccountJid::new("alice@example.test");
        let tag = key.tag(&alice);
        assert_eq!(tag.as_str().len(), 32);
        assert!(tag.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key.tag(&alice), tag);
        assert_ne!(key.tag(&AccountJid::new("bob@example.test")), tag);
        let other = AccountKey::from_hex(&"22".repeat(32)).expect("valid key");
        assert_ne!(other.tag(&alice), tag);
    }

    #[test]
    fn debug_shows_no_jid_and_no_key() {
        let key = AccountKey::generate();
        let jid = AccountJid::new("alice@example.test");
        assert_eq!(format!("{jid:?}"), "AccountJid(…)");
        assert_eq!(format!("{key:?}"), "AccountKey(…)");
        let tag = key.tag(&jid);
        assert!(!format!("{tag:?}").contains(tag.as_str()));
    }
}
