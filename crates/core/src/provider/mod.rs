//! The UnifiedPush provider (the up role): registrations that yield stateless endpoints, and
//! messages posted to them that are relayed to the client, or kept until it can take them.
//! Every decision of docs/protocol.md A.3 is made here; the HTTP and XMPP adapters map outcomes.
//!
//! Delivery is at least once: a client whose answer is lost (timeout, link drop) gets the
//! message again with the next flush.

mod config;
mod flush;
pub mod headers;
mod metrics;
mod peers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use crate::client_link::{ClientLink, PushDelivery, UpPush};
use crate::clock::{Clock, UnixMillis};
use crate::metric_handles::LOAD_SHED;
use crate::store::{
    EndpointId, MessageStoreLimits, NewStoredMessage, OwnerKey, StoreError, StoreFullScope,
    UnifiedPushStore,
};
use crate::trace::{AppTag, DeliveryTrace, Hop, TraceEvent, TraceId, TraceKey, TraceOutcome};
use crate::unified_push::{EndpointClaims, EndpointKeys, InvalidUpId, SealError, UpId};

pub use config::{MIN_REGISTRATION_TTL, UnifiedPushConfig, UnifiedPushConfigError};
pub use flush::FlushReport;
pub use headers::{HeaderError, Topic, Urgency, parse_ttl};
pub use peers::{OwnerFlush, PeerInstances};

/// How the provider behaves; built from the `[unified_push]` settings by
/// [`UnifiedPushConfig::provider_config`].
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Endpoints are `{public_url}/push/{token}`; no trailing slash.
    pub public_url: String,
    /// How long a registration (and its endpoint token) lives, in milliseconds.
    pub registration_ttl_ms: i64,
    /// The longest an undelivered message is kept, in seconds, whatever its `TTL` asks.
    pub max_message_ttl_secs: u32,
    /// Caps on stored messages.
    pub store_limits: MessageStoreLimits,
    /// When set, only accounts of these domains may register.
    pub allowed_domains: Option<Vec<String>>,
}

/// A registration handed back to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpRegistration {
    /// `{public_url}/push/{token}`.
    pub endpoint: String,
    /// When the registration (and the token) expire.
    pub expires_at: UnixMillis,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpRegisterError {
    /// `application` or `instance` is not base64 of 32 bytes (XMPP: bad-request).
    #[error("{field} is not base64 of 32 bytes: {source}")]
    BadId {
        /// `application` or `instance`.
        field: &'static str,
        /// What was wrong.
        source: InvalidUpId,
    },
    /// The account's domain is not on the allow-list (XMPP: forbidden).
    #[error("this provider does not serve that domain")]
    DomainNotAllowed,
    /// The JID is too long to fit in a token (XMPP: bad-request).
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A message posted to an endpoint, its headers already validated. The body is borrowed: a
/// message the client takes at once is never copied, only one that is kept.
#[derive(Clone, Debug, Default)]
pub struct IncomingMessage<'a> {
    /// The body (the HTTP side enforces the size limit).
    pub body: &'a [u8],
    /// Requested `TTL` in seconds; none means the service's maximum.
    pub ttl_secs: Option<u32>,
    /// `Topic`, for replacement of an undelivered message.
    pub topic: Option<Topic>,
    /// `Urgency`.
    pub urgency: Option<Urgency>,
}

/// What became of a posted message; one variant per row of the table in docs/protocol.md A.3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// The client took it (201). `ttl_secs` is what the `TTL` response header says.
    Delivered {
        /// The effective TTL.
        ttl_secs: u32,
    },
    /// Not delivered now; kept for `ttl_secs` (201).
    Stored {
        /// How long it is kept.
        ttl_secs: u32,
    },
    /// `TTL: 0` and not deliverable now: dropped as the sender asked (201, `TTL: 0`).
    Dropped,
    /// Unknown, malformed, foreign, expired or revoked endpoint (404).
    NotFound,
    /// The owner has too many undelivered messages (429).
    OwnerFull,
    /// pushgate cannot accept it now: store full or database down (503).
    Unavailable,
}

/// A user's own view of its deliveries ([`Provider::delivery_status`]).
#[derive(Debug)]
pub struct DeliveryStatus {
    /// The trace of the user's bare JID, oldest first.
    pub events: Vec<TraceEvent>,
    /// Messages kept for this resource, or the store's failure.
    pub waiting: Result<usize, StoreError>,
}

/// The UnifiedPush provider.
pub struct Provider {
    keys: EndpointKeys,
    store: Arc<dyn UnifiedPushStore>,
    link: Arc<dyn ClientLink>,
    clock: Arc<dyn Clock>,
    config: ProviderConfig,
    /// Owners that may have stored messages, so a delivery knows whether to flush.
    pending_owners: Mutex<HashSet<OwnerKey>>,
    /// Owners being flushed now, so two flushes never send the same messages twice at once;
    /// `true` when another flush was asked for meanwhile (the owner may have become reachable
    /// after the running one found it was not), so the running one goes round once more.
    flushing: Mutex<HashMap<OwnerKey, bool>>,
    trace: Option<Arc<DeliveryTrace>>,
    /// The other instances sharing the store, told when this one keeps a message.
    peers: Option<Arc<dyn PeerInstances>>,
}

/// Where one message's steps go in the trace, worked out once per message (a keyed hash of
/// the owner, a SHA-256 of the application) however many steps it records.
#[derive(Clone, Copy)]
struct Traced {
    key: TraceKey,
    app: AppTag,
    trace_id: TraceId,
}

impl Provider {
    /// A provider sealing with `keys`, keeping state in `store`, reaching clients over `link`.
    pub fn new(
        keys: EndpointKeys,
        store: Arc<dyn UnifiedPushStore>,
        link: Arc<dyn ClientLink>,
        clock: Arc<dyn Clock>,
        config: ProviderConfig,
    ) -> Self {
        Self {
            keys,
            store,
            link,
            clock,
            config,
            pending_owners: Mutex::new(HashSet::new()),
            flushing: Mutex::new(HashMap::new()),
            trace: None,
            peers: None,
        }
    }

    /// Tells `peers` of each message kept, so that whichever instance sees its owner come
    /// back flushes it.
    pub fn with_peers(mut self, peers: Arc<dyn PeerInstances>) -> Self {
        self.peers = Some(peers);
        self
    }

    /// Records what becomes of each message in `trace`, by the owner's bare JID.
    pub fn with_trace(mut self, trace: Arc<DeliveryTrace>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace target of a message of `owner` (a full JID) to `application`; `None` when
    /// nothing is traced.
    fn traced(&self, owner: &str, application: &str, trace_id: TraceId) -> Option<Traced> {
        let trace = self.trace.as_ref()?;
        Some(Traced {
            key: trace.account_key(owner),
            app: AppTag::of(application),
            trace_id,
        })
    }

    fn record(&self, traced: Option<Traced>, hop: Hop, outcome: TraceOutcome, latency_us: u32) {
        let (Some(trace), Some(traced)) = (&self.trace, traced) else {
            return;
        };
        trace.record(
            &traced.key,
            TraceEvent {
                at: self.clock.now(),
                hop,
                outcome,
                latency_us,
                application: Some(traced.app),
                trace_id: traced.trace_id,
            },
        );
    }

    /// Sends `push` to its client, counting it and its round trip (docs/metrics.md); the
    /// round trip comes back for the trace.
    async fn push_to_client(&self, push: UpPush<'_>) -> (PushDelivery, Duration) {
        let sent = Instant::now();
        let delivery = self.link.push(push).await;
        let round_trip = sent.elapsed();
        metrics::push_iq(&delivery, round_trip);
        (delivery, round_trip)
    }

    /// The settings in force.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// A `<register/>` from `owner` (the full JID, as received).
    pub fn register(
        &self,
        owner: &str,
        owner_domain: &str,
        application: &str,
        instance: &str,
    ) -> Result<UpRegistration, UpRegisterError> {
        let application = UpId::parse(application).map_err(|source| UpRegisterError::BadId {
            field: "application",
            source,
        })?;
        let instance = UpId::parse(instance).map_err(|source| UpRegisterError::BadId {
            field: "instance",
            source,
        })?;
        if let Some(allowed) = &self.config.allowed_domains
            && !allowed
                .iter()
                .any(|domain| domain.eq_ignore_ascii_case(owner_domain))
        {
            return Err(UpRegisterError::DomainNotAllowed);
        }
        let expires_at = self
            .clock
            .now()
            .saturating_add(self.config.registration_ttl_ms);
        let token = self.keys.seal(&EndpointClaims {
            owner: owner.to_owned(),
            expires_at,
            application,
            instance,
        })?;
        Ok(UpRegistration {
            endpoint: format!("{}/push/{token}", self.config.public_url),
            expires_at,
        })
    }

    /// Checks an endpoint for `GET`/`POST`: its claims, unless it is unknown, expired or
    /// revoked (all 404). A database failure is `Err`.
    pub async fn open_endpoint(&self, token: &str) -> Result<Option<EndpointClaims>, StoreError> {
        let now = self.clock.now();
        let Ok(claims) = self.keys.open(token, now) else {
            return Ok(None);
        };
        if self
            .store
            .is_endpoint_revoked(&EndpointId::of_token(token), now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(claims))
    }

    /// A message POSTed to `{public_url}/push/{token}`.
    pub async fn accept(&self, token: &str, message: IncomingMessage<'_>) -> AcceptOutcome {
        // The trace id joins the message's log lines and trace events: a field of each info and
        // warn line, and at debug level the span of every line (see `AppServer::publish`).
        let trace_id = TraceId::new();
        async {
            let outcome = self.accept_traced(token, message, trace_id).await;
            tracing::debug!(?outcome, "push answered");
            outcome
        }
        .instrument(tracing::debug_span!("push", trace = %trace_id))
        .await
    }

    async fn accept_traced(
        &self,
        token: &str,
        message: IncomingMessage<'_>,
        trace_id: TraceId,
    ) -> AcceptOutcome {
        let claims = match self.open_endpoint(token).await {
            Ok(Some(claims)) => claims,
            Ok(None) => return AcceptOutcome::NotFound,
            Err(error) => {
                tracing::warn!(trace = %trace_id, %error, "push: revocation check failed");
                return AcceptOutcome::Unavailable;
            }
        };
        let ttl_secs = message
            .ttl_secs
            .unwrap_or(self.config.max_message_ttl_secs)
            .min(self.config.max_message_ttl_secs);
        let owner_key = OwnerKey::of_jid(&claims.owner);
        let (delivery, round_trip) = self
            .push_to_client(UpPush {
                owner: &claims.owner,
                application: claims.application.as_str(),
                instance: claims.instance.as_str(),
                body: message.body,
                endpoint_token: token,
            })
            .await;
        let traced = self.traced(&claims.owner, claims.application.as_str(), trace_id);
        let answered = match &delivery {
            PushDelivery::Delivered => TraceOutcome::Ok,
            PushDelivery::Revoked => TraceOutcome::Revoked,
            PushDelivery::NotDelivered(_) => TraceOutcome::NotDelivered,
        };
        let round_trip = TraceEvent::saturating_micros(round_trip);
        self.record(traced, Hop::ClientAnswered, answered, round_trip);
        match delivery {
            PushDelivery::Delivered => {
                metrics::delivery("delivered", 1);
                if self.has_pending(&owner_key) {
                    // The client is reachable again: what waited for it goes out now.
                    self.flush_owner_for(&claims.owner, Hop::FlushedAfterDelivery)
                        .await;
                }
                AcceptOutcome::Delivered { ttl_secs }
            }
            PushDelivery::Revoked => {
                metrics::delivery("revoked", 1);
                self.record(traced, Hop::Revoked, TraceOutcome::Revoked, 0);
                self.revoke(token, &claims, &owner_key, trace_id).await;
                AcceptOutcome::NotFound
            }
            PushDelivery::NotDelivered(reason) => {
                tracing::debug!(%reason, "push not delivered");
                if ttl_secs == 0 {
                    metrics::delivery("dropped_ttl0", 1);
                    self.record(traced, Hop::Dropped, TraceOutcome::Ok, 0);
                    return AcceptOutcome::Dropped;
                }
                let outcome = self
                    .keep(token, &claims, owner_key, message, ttl_secs, trace_id)
                    .await;
                let kept = match outcome {
                    AcceptOutcome::Stored { .. } => TraceOutcome::Ok,
                    _ => TraceOutcome::Refused,
                };
                self.record(traced, Hop::Stored, kept, 0);
                outcome
            }
        }
    }

    async fn keep(
        &self,
        token: &str,
        claims: &EndpointClaims,
        owner: OwnerKey,
        message: IncomingMessage<'_>,
        ttl_secs: u32,
        trace_id: TraceId,
    ) -> AcceptOutcome {
        let now = self.clock.now();
        // Never past the endpoint's own expiry: after it, the owner cannot be told anyway.
        let expires_at = now
            .saturating_add(i64::from(ttl_secs) * 1000)
            .min(claims.expires_at);
        let kept_secs = u32::try_from((expires_at - now).max(0) / 1000).unwrap_or(u32::MAX);
        let stored = NewStoredMessage {
            owner: owner.clone(),
            endpoint_token: token.to_owned(),
            application: claims.application.as_str().to_owned(),
            instance: claims.instance.as_str().to_owned(),
            topic: message.topic.map(|topic| topic.as_str().to_owned()),
            urgency: message.urgency.map(|urgency| urgency.as_str().to_owned()),
            body: message.body.to_vec(),
            received_at: now,
            expires_at,
        };
        match self
            .store
            .store_message(stored, self.config.store_limits)
            .await
        {
            Ok(_) => {
                metrics::delivery("stored", 1);
                if let Some(peers) = &self.peers {
                    peers.messages_kept(&owner);
                }
                self.mark_pending(owner);
                AcceptOutcome::Stored {
                    ttl_secs: kept_secs,
                }
            }
            Err(StoreError::Full(StoreFullScope::Owner)) => {
                LOAD_SHED.increment("owner_full", 1);
                AcceptOutcome::OwnerFull
            }
            Err(StoreError::Full(StoreFullScope::Total)) => {
                LOAD_SHED.increment("store_full", 1);
                AcceptOutcome::Unavailable
            }
            Err(error) => {
                tracing::warn!(trace = %trace_id, %error, "push: storing an undelivered message failed");
                AcceptOutcome::Unavailable
            }
        }
    }

    async fn revoke(
        &self,
        token: &str,
        claims: &EndpointClaims,
        owner: &OwnerKey,
        trace_id: TraceId,
    ) {
        tracing::info!(trace = %trace_id, "client revoked an endpoint");
        let endpoint = EndpointId::of_token(token);
        if let Err(error) = self
            .store
            .revoke_endpoint(&endpoint, claims.expires_at)
            .await
        {
            tracing::warn!(trace = %trace_id, %error, "recording a revocation failed");
        }
        let deleted = self
            .store
            .delete_endpoint_messages(owner, claims.application.as_str(), claims.instance.as_str())
            .await;
        if let Err(error) = deleted {
            tracing::warn!(trace = %trace_id, %error, "deleting a revoked endpoint's messages failed");
        }
    }

    /// What the user at `owner` (a full JID, as the XMPP server vouched for it) may see of its
    /// own UnifiedPush deliveries: the trace of its bare JID, and how many messages wait for
    /// this resource (counted up to the per-owner cap).
    pub async fn delivery_status(&self, owner: &str) -> DeliveryStatus {
        let events = self
            .trace
            .as_ref()
            .map(|trace| trace.events(&trace.account_key(owner)))
            .unwrap_or_default();
        let waiting = self
            .store
            .messages_for_owner(
                &OwnerKey::of_jid(owner),
                self.clock.now(),
                self.config.store_limits.max_per_owner,
            )
            .await
            .map(|messages| messages.len());
        DeliveryStatus { events, waiting }
    }

    /// Whether `owner` (a full JID) may have kept messages: one was stored for it, or the
    /// flush after link-up found some, and no flush has since sent them all. Available
    /// presence flushes only such owners, so presence from anyone else costs nothing: no task,
    /// no database query. The set holds at most one entry per owner with stored messages,
    /// which the store's caps bound.
    pub fn may_have_messages(&self, owner: &str) -> bool {
        self.has_pending(&OwnerKey::of_jid(owner))
    }

    fn has_pending(&self, owner: &OwnerKey) -> bool {
        lock(&self.pending_owners).contains(owner)
    }

    fn mark_pending(&self, owner: OwnerKey) {
        lock(&self.pending_owners).insert(owner);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The sets hold no invariant a panic elsewhere could break.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
