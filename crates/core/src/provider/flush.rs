//! Store and forward: sending kept messages when their owner can take them (docs/protocol.md A.3).

use std::collections::HashSet;
use std::time::Duration;

use tracing::Instrument as _;

use super::{Provider, lock};
use crate::client_link::{PushDelivery, UpPush};
use crate::store::{OwnerKey, StoredMessage};
use crate::trace::{Hop, TraceEvent, TraceId, TraceOutcome};

/// How many stored messages are read per query.
const PAGE: u32 = 100;

/// What a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Messages the client took.
    pub delivered: u64,
    /// Messages dropped because the client revoked their endpoint.
    pub revoked: u64,
    /// Messages dropped because their endpoint token no longer opens (expired, key retired).
    pub unopenable: u64,
    /// Whether the owner stopped answering, leaving messages for a later flush.
    pub interrupted: bool,
    /// Whether the database failed, leaving messages unsent whoever could take them: the
    /// flush should be tried again.
    pub failed: bool,
}

impl FlushReport {
    fn add(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.revoked += other.revoked;
        self.unopenable += other.unopenable;
        self.interrupted |= other.interrupted;
        self.failed |= other.failed;
    }
}

/// Removes the owner from the set of owners being flushed, however the flush ends.
struct FlushGuard<'a> {
    provider: &'a Provider,
    owner: OwnerKey,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        lock(&self.provider.flushing).remove(&self.owner);
    }
}

impl Provider {
    /// Sends `owner`'s kept messages, oldest first, stopping at the first one not delivered.
    /// Called when the owner (a full JID) sends available presence.
    pub async fn flush_owner(&self, owner: &str) -> FlushReport {
        self.flush_owner_for(owner, Hop::FlushedOnPresence).await
    }

    /// [`Self::flush_owner`], its deliveries traced as `cause` (presence, link-up, or a new
    /// message that reached the client).
    pub(super) async fn flush_owner_for(&self, owner: &str, cause: Hop) -> FlushReport {
        let trace_id = TraceId::new();
        self.flush_owner_traced(owner, cause, trace_id)
            .instrument(tracing::debug_span!("flush", trace = %trace_id))
            .await
    }

    async fn flush_owner_traced(&self, owner: &str, cause: Hop, trace_id: TraceId) -> FlushReport {
        let key = OwnerKey::of_jid(owner);
        {
            let mut flushing = lock(&self.flushing);
            if let Some(again) = flushing.get_mut(&key) {
                // Another flush of this owner is running: it goes round once more when it is
                // done, since the owner may be reachable now where it was not a moment ago.
                *again = true;
                return FlushReport::default();
            }
            flushing.insert(key.clone(), false);
        }
        let _guard = FlushGuard {
            provider: self,
            owner: key.clone(),
        };
        // Across instances: one flushes, the others leave it to that one.
        let _across = match &self.peers {
            Some(peers) => match peers.flush_owner(&key).await {
                super::OwnerFlush::Granted(guard) => Some(guard),
                super::OwnerFlush::Busy => return FlushReport::default(),
            },
            None => None,
        };
        let mut report = FlushReport::default();
        loop {
            report.add(self.flush_owner_once(owner, &key, (cause, trace_id)).await);
            let mut flushing = lock(&self.flushing);
            match flushing.get_mut(&key) {
                Some(again) if *again => *again = false,
                _ => return report,
            }
        }
    }

    /// One pass of [`Self::flush_owner`].
    async fn flush_owner_once(
        &self,
        owner: &str,
        key: &OwnerKey,
        traced: (Hop, TraceId),
    ) -> FlushReport {
        let key = key.clone();
        let mut report = FlushReport::default();
        // Endpoints revoked during this flush: their later messages are already deleted.
        let mut revoked: HashSet<(String, String)> = HashSet::new();
        loop {
            let now = self.clock.now();
            let page = match self.store.messages_for_owner(&key, now, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "flush: reading stored messages failed");
                    report.interrupted = true;
                    report.failed = true;
                    return report;
                }
            };
            if page.is_empty() {
                lock(&self.pending_owners).remove(&key);
                return report;
            }
            for stored in page {
                let endpoint = (
                    stored.message.application.clone(),
                    stored.message.instance.clone(),
                );
                if revoked.contains(&endpoint) {
                    continue;
                }
                match self.forward(owner, &key, &stored, traced).await {
                    Some(step) => {
                        if step.revoked > 0 {
                            revoked.insert(endpoint);
                        }
                        report.add(step);
                    }
                    None => {
                        report.interrupted = true;
                        return report;
                    }
                }
            }
        }
    }

    /// Sends every kept message: after start, and each time the link comes back.
    pub async fn flush_all(&self) -> FlushReport {
        // For the log lines of what this pass deletes itself; each owner's flush has its own.
        let trace_id = TraceId::new();
        let mut owners = Vec::new();
        let mut seen = HashSet::new();
        let mut report = FlushReport::default();
        let mut after = 0;
        loop {
            let now = self.clock.now();
            let page = match self.store.messages_after(after, now, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "flush: reading stored messages failed");
                    report.interrupted = true;
                    report.failed = true;
                    return report;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.id;
            for stored in page {
                match self.keys.open(&stored.message.endpoint_token, now) {
                    Ok(claims) => {
                        if seen.insert(stored.message.owner.clone()) {
                            lock(&self.pending_owners).insert(stored.message.owner.clone());
                            owners.push(claims.owner);
                        }
                    }
                    Err(_) => {
                        super::metrics::delivery("expired", 1);
                        self.delete(stored.id, trace_id).await;
                        report.unopenable += 1;
                    }
                }
            }
        }
        for owner in owners {
            report.add(self.flush_owner_for(&owner, Hop::FlushedOnLinkUp).await);
        }
        report
    }

    /// Deletes expired messages and revocations; run now and then.
    pub async fn purge_expired(&self) {
        let now = self.clock.now();
        match self.store.purge_expired_messages(now).await {
            Ok(purged) => super::metrics::delivery("expired", purged),
            Err(error) => tracing::warn!(%error, "purging expired messages failed"),
        }
        if let Err(error) = self.store.purge_expired_revocations(now).await {
            tracing::warn!(%error, "purging expired revocations failed");
        }
    }

    /// Sends one kept message. `None` when the owner did not take it (stop flushing).
    async fn forward(
        &self,
        owner: &str,
        key: &OwnerKey,
        stored: &StoredMessage,
        (cause, trace_id): (Hop, TraceId),
    ) -> Option<FlushReport> {
        let message = &stored.message;
        let waited_ms = (self.clock.now() - message.received_at).max(0);
        let waited = TraceEvent::saturating_micros(Duration::from_millis(
            u64::try_from(waited_ms).unwrap_or_default(),
        ));
        let traced = self.traced(owner, &message.application, trace_id);
        let step = |hop, outcome| self.record(traced, hop, outcome, waited);
        let Ok(claims) = self.keys.open(&message.endpoint_token, self.clock.now()) else {
            super::metrics::delivery("expired", 1);
            step(Hop::Expired, TraceOutcome::Refused);
            self.delete(stored.id, trace_id).await;
            return Some(FlushReport {
                unopenable: 1,
                ..FlushReport::default()
            });
        };
        let (delivery, _) = self
            .push_to_client(UpPush {
                owner,
                application: &message.application,
                instance: &message.instance,
                body: &message.body,
                endpoint_token: &message.endpoint_token,
            })
            .await;
        match delivery {
            PushDelivery::Delivered => {
                super::metrics::delivery("delivered", 1);
                step(cause, TraceOutcome::Ok);
                super::metrics::stored_to_delivered(self.clock.now() - message.received_at);
                self.delete(stored.id, trace_id).await;
                Some(FlushReport {
                    delivered: 1,
                    ..FlushReport::default()
                })
            }
            PushDelivery::Revoked => {
                super::metrics::delivery("revoked", 1);
                step(Hop::Revoked, TraceOutcome::Revoked);
                self.revoke(&message.endpoint_token, &claims, key, trace_id)
                    .await;
                Some(FlushReport {
                    revoked: 1,
                    ..FlushReport::default()
                })
            }
            PushDelivery::NotDelivered(reason) => {
                step(cause, TraceOutcome::NotDelivered);
                tracing::debug!(%reason, "flush stopped: owner not reachable");
                None
            }
        }
    }

    async fn delete(&self, id: i64, trace_id: TraceId) {
        if let Err(error) = self.store.delete_message(id).await {
            // At least once: the message may be sent again by a later flush.
            tracing::warn!(trace = %trace_id, %error, "deleting a forwarded message failed");
        }
    }
}
