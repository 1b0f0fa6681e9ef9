//! The storage port: what the two services need to remember, whatever the database.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::clock::UnixMillis;
use crate::device::{DeviceHash, PushService};
use crate::registration::{Registration, RegistrationRequest};

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time; worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored-message cap was reached; the message was not stored.
    #[error("message store full ({0})")]
    Full(StoreFullScope),
    /// A row could not be read back into its type (a bug or a hand-edited database).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A new device was not registered: its account already has this many.
    #[error("the account already has {0} registered devices")]
    TooManyDevices(u32),
}

/// Which cap a refused message hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFullScope {
    /// The owner already has the most messages allowed for one owner.
    Owner,
    /// The store already holds the most messages allowed in total.
    Total,
}

impl fmt::Display for StoreFullScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Owner => "per-owner cap",
            Self::Total => "total cap",
        })
    }
}

/// Identifies a UnifiedPush endpoint without storing it: lowercase hex SHA-256 of the endpoint
/// token string (64 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointId(String);

impl EndpointId {
    /// The id of an endpoint token.
    pub fn of_token(token: &str) -> Self {
        Self(sha256_hex(token.as_bytes()))
    }

    /// Wraps an id read from the store.
    pub fn from_stored(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Identifies the owner (a full JID) of stored messages without storing the JID: lowercase hex
/// SHA-256 of the full JID (64 characters). The JID itself is recovered from the endpoint token
/// kept with each message, which only pushgate's keys open.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerKey(String);

impl OwnerKey {
    /// The key of a full JID.
    pub fn of_jid(full_jid: &str) -> Self {
        Self(sha256_hex(full_jid.as_bytes()))
    }

    /// Wraps a key read from the store.
    pub fn from_stored(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The database id of a stored message; ids grow with arrival, so they give delivery order.
pub type StoredMessageId = i64;

/// A UnifiedPush message to keep until its owner can take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStoredMessage {
    /// Whose message it is.
    pub owner: OwnerKey,
    /// The endpoint token the message was posted to (sealed; it names the owner's full JID).
    pub endpoint_token: String,
    /// The UnifiedPush `application` id.
    pub application: String,
    /// The UnifiedPush `instance` id.
    pub instance: String,
    /// RFC 8030 §5.4 `Topic`: a newer message with the same topic, owner, application and
    /// instance replaces the stored one.
    pub topic: Option<String>,
    /// RFC 8030 §5.3 `Urgency` as received (`very-low` … `high`).
    pub urgency: Option<String>,
    /// The request body, unchanged.
    pub body: Vec<u8>,
    /// When pushgate accepted it.
    pub received_at: UnixMillis,
    /// When it must be dropped if still undelivered.
    pub expires_at: UnixMillis,
}

/// A message as read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id (delivery order).
    pub id: StoredMessageId,
    /// The message as it was stored.
    pub message: NewStoredMessage,
}

/// The caps on stored messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageStoreLimits {
    /// At most this many messages per owner.
    pub max_per_owner: u32,
    /// At most this many messages in total.
    pub max_total: u64,
}

/// The XEP-0357 registrations (the app server's port): one row per (service, device).
#[async_trait]
pub trait RegistrationStore: Send + Sync + 'static {
    /// Records a registration. A known (service, device) keeps its node and secret; its token,
    /// domain and `updated_at` are updated and `dead_since` is cleared. A new one is inserted
    /// with `fresh_node` and `fresh_secret`. Returns the registration as stored.
    async fn register_device(
        &self,
        request: RegistrationRequest,
    ) -> Result<Registration, StoreError>;

    /// Removes the registration of (service, device). Returns whether one existed.
    async fn unregister_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError>;

    /// The registration a publish from `domain` to `node` is for.
    async fn find_registration(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError>;

    /// Marks the token of (service, device) dead, if the stored token is still `token` (a
    /// re-registration with a new token in between wins). Returns whether a row changed.
    async fn mark_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Deletes registrations dead since before `dead_before`. Returns how many.
    async fn purge_dead_registrations(&self, dead_before: UnixMillis) -> Result<u64, StoreError>;
}

/// The revoked UnifiedPush endpoints.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Puts an endpoint on the revocation list until `expires_at` (the token's own expiry).
    /// Revoking twice is not an error.
    async fn revoke_endpoint(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError>;

    /// Whether the endpoint is revoked at `now`.
    async fn is_endpoint_revoked(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Deletes revocations that expired before `now`. Returns how many.
    async fn purge_expired_revocations(&self, now: UnixMillis) -> Result<u64, StoreError>;
}

/// The UnifiedPush messages kept for owners who could not take them.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a message. With a topic, it replaces the stored message of the same owner,
    /// application, instance and topic (the new one takes a new, later id). Refuses with
    /// [`StoreError::Full`] past the limits (a replacement does not count twice).
    async fn store_message(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Result<StoredMessageId, StoreError>;

    /// The owner's unexpired messages at `now`, oldest first, at most `limit`.
    async fn messages_for_owner(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// All unexpired messages with an id above `after`, oldest first, at most `limit`: the
    /// pages walked when a link comes back.
    async fn messages_after(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Deletes a message once delivered (or revoked). Returns whether it existed.
    async fn delete_message(&self, id: StoredMessageId) -> Result<bool, StoreError>;

    /// Deletes messages that expired before `now`. Returns how many.
    async fn purge_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError>;

    /// Deletes every stored message of an owner's endpoint (after a revocation).
    async fn delete_endpoint_messages(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError>;
}

/// What the UnifiedPush provider keeps: revocations and messages.
pub trait UnifiedPushStore: RevocationStore + MessageStore {}

impl<T: RevocationStore + MessageStore + ?Sized> UnifiedPushStore for T {}

/// Everything pushgate keeps, for what needs all of it (start-up, `/health`, maintenance).
/// Implemented by `pushgate-store` for SQLite, PostgreSQL and MySQL/MariaDB; every
/// implementation passes the same tests. Each role takes only its port: the app server a
/// [`RegistrationStore`], the provider a [`UnifiedPushStore`].
#[async_trait]
pub trait Store: RegistrationStore + UnifiedPushStore {
    /// Whether the database answers (for `/health`).
    async fn ping(&self) -> Result<(), StoreError>;
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::device::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(EndpointId::of_token("abc").as_str(), expected);
        assert_eq!(OwnerKey::of_jid("abc").as_str(), expected);
        assert_ne!(
            OwnerKey::of_jid("alice@example.test/a"),
            OwnerKey::of_jid("alice@example.test/b")
        );
    }
}
