//! A XEP-0357 registration as p2 keeps it: device, token, and the node and secret handed out.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use crate::account::AccountJid;
use crate::clock::UnixMillis;
use crate::device::{DeviceHash, PushService};

/// The pubsub node a device's XMPP server publishes to: standard base64 of 9 random bytes
/// (12 characters), as p2 allocates it (docs/protocol.md A.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node(String);

impl Node {
    /// A fresh node from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(STANDARD.encode(rand::random::<[u8; 9]>()))
    }

    /// Wraps a node read from the store or from a publish.
    pub fn new(node: impl Into<String>) -> Self {
        Self(node.into())
    }

    /// The node as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The publish secret a device's XMPP server must present: standard base64 of 18 random bytes
/// (24 characters). Compared in constant time; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(STANDARD.encode(rand::random::<[u8; 18]>()))
    }

    /// Wraps a secret read from the store.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret as stored and sent in the registration reply.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals this secret, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One registered device (one row of the registrations table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// FCM or APNs.
    pub service: PushService,
    /// Hash of account and device.
    pub device: DeviceHash,
    /// The domain of the registering account; publishes are looked up by (domain, node).
    pub domain: String,
    /// The FCM registration token or APNs device token.
    pub token: String,
    /// The node handed to the client.
    pub node: Node,
    /// The secret handed to the client.
    pub secret: Secret,
    /// When the device first registered.
    pub created_at: UnixMillis,
    /// When the token last changed or was confirmed.
    pub updated_at: UnixMillis,
    /// Set when the push service said the token is dead (FCM `UNREGISTERED`, APNs 410);
    /// cleared by a re-registration.
    pub dead_since: Option<UnixMillis>,
}

/// What a `register-push-*` command asks the store to record.
///
/// The store keeps the existing node and secret for a known (service, device) and only updates
/// the token; `fresh_node` and `fresh_secret` are used for a new device alone. A new device
/// of an account that already has `max_devices_per_account` is refused with
/// [`StoreError::TooManyDevices`](crate::StoreError::TooManyDevices).
#[derive(Clone, Debug)]
pub struct RegistrationRequest {
    /// FCM or APNs.
    pub service: PushService,
    /// Hash of account and device.
    pub device: DeviceHash,
    /// The domain of the registering account.
    pub domain: String,
    /// The registering account, for the limit on its devices; stored only as an
    /// [`AccountTag`](crate::account::AccountTag).
    pub account: AccountJid,
    /// The most devices the account may have registered (live ones: a token the push service
    /// called dead does not count). A device already registered is never refused.
    pub max_devices_per_account: u32,
    /// The push token sent by the client.
    pub token: String,
    /// Node for a device not yet known.
    pub fresh_node: Node,
    /// Secret for a device not yet known.
    pub fresh_secret: Secret,
    /// The time of the request.
    pub now: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_standard_base64(text: &str) -> bool {
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    }

    #[test]
    fn node_and_secret_have_p2_lengths() {
        for _ in 0..64 {
            let node = Node::generate();
            let secret = Secret::generate();
            assert_eq!(node.as_str().len(), 12);
            assert_eq!(secret.expose().len(), 24);
            assert!(is_standard_base64(node.as_str()));
            assert!(is_standard_base64(secret.expose()));
        }
    }

    #[test]
    fn generated_values_differ() {
        assert_ne!(Node::generate(), Node::generate());
        assert_ne!(Secret::generate(), Secret::generate());
    }

    #[test]
    fn secret_matches_only_itself() {
        let secret = Secret::new("KK4+H5WMfpRG/2zCbuKq6wpX");
        assert!(secret.matches("KK4+H5WMfpRG/2zCbuKq6wpX"));
        assert!(!secret.matches("KK4+H5WMfpRG/2zCbuKq6wpY"));
        assert!(!secret.matches(""));
        assert!(!secret.matches("KK4+H5WMfpRG/2zCbuKq6wpXX"));
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }
}
