//! Several instances sharing one store: what the provider tells the others, and what it does
//! for them (docs/several-instances.md).
//!
//! - A message kept by one instance may be flushed by another (the one that holds the link, or
//!   that sees the owner come back), so each kept message is announced ([`PeerInstances`]),
//!   and an announcement heard marks the owner here ([`Provider::note_pending`]).
//! - An instance without the link hands a push to the one that holds it; that one sends it
//!   with [`Provider::relay`] and says what the client answered.
//! - An owner's kept messages are flushed by one instance at a time ([`OwnerFlush`]): its
//!   presence may reach several, and each message should reach the client once.

use async_trait::async_trait;

use super::{FlushReport, Provider, lock};
use crate::client_link::{PushDelivery, UpPush};
use crate::store::{OwnerKey, StoreError};
use crate::trace::Hop;

/// The other instances sharing the store.
#[async_trait]
pub trait PeerInstances: Send + Sync + 'static {
    /// A message of `owner` was kept. Must not wait: an announcement that cannot be made is
    /// made up for when the others resynchronise ([`Provider::note_all_pending`]).
    fn messages_kept(&self, owner: &OwnerKey);

    /// Asks to flush `owner`'s kept messages, which one instance at a time may do.
    async fn flush_owner(&self, owner: &OwnerKey) -> OwnerFlush;
}

/// Whether this instance may flush an owner's kept messages now.
pub enum OwnerFlush {
    /// Yes, until the guard is dropped. When the others cannot be asked (the database is
    /// away), the answer is yes too: a message sent twice is better than one not sent.
    Granted(Box<dyn Send>),
    /// Another instance is flushing them now.
    Busy,
}

/// How many stored messages are read per query while resynchronising.
const PAGE: u32 = 500;

impl Provider {
    /// Another instance kept a message of `owner`: available presence from it flushes here.
    pub fn note_pending(&self, owner: OwnerKey) {
        self.mark_pending(owner);
    }

    /// Marks every owner with kept messages, from the store: after announcements may have been
    /// missed (at start, or when the channel they come on was lost). Returns how many
    /// messages were read.
    pub async fn note_all_pending(&self) -> Result<usize, StoreError> {
        let mut after = 0;
        let mut read = 0;
        loop {
            let page = self
                .store
                .messages_after(after, self.clock.now(), PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(read);
            };
            after = last.id;
            read += page.len();
            let mut pending = lock(&self.pending_owners);
            for stored in page {
                pending.insert(stored.message.owner);
            }
        }
    }

    /// Flushes what another instance kept for `owner` because it could not hand it over (no
    /// instance held the link for a moment): the holder sends it now rather than at the
    /// owner's next presence, which may be hours away. The owner's JID comes from the first
    /// kept message's endpoint token; nothing is sent if there is none, or it does not open.
    pub async fn flush_kept_for(&self, owner: OwnerKey) -> FlushReport {
        self.mark_pending(owner.clone());
        let first = match self
            .store
            .messages_for_owner(&owner, self.clock.now(), 1)
            .await
        {
            Ok(first) => first,
            Err(error) => {
                tracing::warn!(%error, "flush: reading stored messages failed");
                return FlushReport {
                    interrupted: true,
                    failed: true,
                    ..FlushReport::default()
                };
            }
        };
        let Some(claims) = first.first().and_then(|stored| {
            self.keys
                .open(&stored.message.endpoint_token, self.clock.now())
                .ok()
        }) else {
            return FlushReport::default();
        };
        self.flush_owner_for(&claims.owner, Hop::FlushedOnLinkUp)
            .await
    }

    /// Sends a push another instance accepted for `endpoint_token` and says what the client
    /// made of it; the caller (that instance's provider) counts it, stores it or revokes.
    /// `None` when the token does not open here (the instances' keys differ, or it expired).
    pub async fn relay(&self, endpoint_token: &str, body: &[u8]) -> Option<PushDelivery> {
        let claims = self.keys.open(endpoint_token, self.clock.now()).ok()?;
        let delivery = self
            .link
            .push(UpPush {
                owner: &claims.owner,
                application: claims.application.as_str(),
                instance: claims.instance.as_str(),
                body,
                endpoint_token,
            })
            .await;
        Some(delivery)
    }
}
