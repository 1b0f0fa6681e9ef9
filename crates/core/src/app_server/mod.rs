//! The XEP-0357 app server (the p2 role): registrations by ad-hoc command, and publishes that
//! turn into wake-ups. Every decision of docs/protocol.md A.2 is made here; the XMPP adapter only
//! maps the outcomes to stanzas.

mod config;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use crate::account::AccountJid;
use crate::clock::Clock;
use crate::device::{DeviceHash, PushService};
use crate::registration::{Node, Registration, RegistrationRequest, Secret};
use crate::store::{RegistrationStore, StoreError};
use crate::trace::{DeliveryTrace, Hop, TraceEvent, TraceId, TraceKey, TraceOutcome};
use crate::waker::{WakeOutcome, WakeRequest, Waker};

pub use config::{AppServerConfig, AppServerConfigError};

/// The longest push token accepted (FCM tokens are about 160 bytes, APNs tokens 64 hex digits;
/// the store keeps up to this many).
pub const MAX_PUSH_TOKEN_LEN: usize = 4096;

/// How many devices one account may have registered unless configured otherwise: far more
/// than anyone's phones, tablets and test installs, few enough that one account cannot fill the
/// table.
pub const DEFAULT_MAX_DEVICES_PER_ACCOUNT: u32 = 32;

/// A `register-push-*` command as the client sent it (fields already taken from the form).
#[derive(Clone, Debug, Default)]
pub struct RegisterCommand<'a> {
    /// The sender's bare JID in wire (escaped, normalised) form.
    pub bare_jid: &'a str,
    /// The sender's domain.
    pub domain: &'a str,
    /// The `token` field.
    pub token: Option<&'a str>,
    /// The `device-id` field (preferred).
    pub device_id: Option<&'a str>,
    /// The `android-id` field (what Conversations sends).
    pub android_id: Option<&'a str>,
    /// Whether a `muc` field was present (legacy channel push, not supported).
    pub has_muc: bool,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No non-blank `token` field.
    #[error("the form has no token")]
    MissingToken,
    /// A `token` longer than any push service issues ([`MAX_PUSH_TOKEN_LEN`]).
    #[error("the token is longer than {MAX_PUSH_TOKEN_LEN} bytes")]
    TokenTooLong,
    /// A `token` that is not in its service's shape (an APNs token that is not hex), which
    /// could never wake anything.
    #[error("the token is not one of the push service's")]
    BadToken,
    /// Neither `device-id` nor `android-id`.
    #[error("the form has no device-id or android-id")]
    MissingDeviceId,
    /// A `muc` field: channel push is not supported.
    #[error("channel (muc) push is not supported")]
    MucUnsupported,
    /// Unregistering a device that is not registered.
    #[error("no such registration")]
    UnknownDevice,
    /// A new device of an account that already has the most devices allowed.
    #[error("the account already has {0} registered devices")]
    TooManyDevices(u32),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A publish as the user's server sent it (fields already taken from the stanza).
#[derive(Clone, Copy, Debug)]
pub struct PublishRequest<'a> {
    /// The domain of the IQ's `from`.
    pub from_domain: &'a str,
    /// Whether the IQ's `from` had a resource (only bare JIDs may publish).
    pub from_has_resource: bool,
    /// `pubsub/publish/@node`.
    pub node: Option<&'a str>,
    /// The `secret` field of `publish-options`.
    pub secret: Option<&'a str>,
}

/// What became of a publish; one variant per row of the table in docs/protocol.md A.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The push service accepted the wake-up.
    Woken,
    /// No registration for (domain, node).
    NoSuchNode,
    /// Missing or wrong secret, missing node, or `from` with a resource. Nothing was sent.
    Forbidden,
    /// The token is dead (now, or already known); the registration is marked dead.
    TokenDead,
    /// The push service could not take it now (or cannot be reached from here yet).
    Unavailable,
    /// pushgate's own failure (database): the server should try again later.
    InternalError,
}

/// The app server: registrations and publishes.
pub struct AppServer {
    store: Arc<dyn RegistrationStore>,
    wakers: HashMap<PushService, Arc<dyn Waker>>,
    clock: Arc<dyn Clock>,
    max_devices_per_account: u32,
    trace: Option<Arc<DeliveryTrace>>,
}

impl AppServer {
    /// An app server over `store`, waking through `wakers` (a service with no waker gets
    /// `Unavailable` on publish, so its registrations survive until a sender exists).
    pub fn new(
        store: Arc<dyn RegistrationStore>,
        wakers: HashMap<PushService, Arc<dyn Waker>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            wakers,
            clock,
            max_devices_per_account: DEFAULT_MAX_DEVICES_PER_ACCOUNT,
            trace: None,
        }
    }

    /// Records each publish to a known node, and its wake-up, in `trace`.
    pub fn with_trace(mut self, trace: Arc<DeliveryTrace>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Sets how many devices one account may register (at least 1).
    #[must_use]
    pub fn with_max_devices_per_account(mut self, limit: u32) -> Self {
        self.max_devices_per_account = limit.max(1);
        self
    }

    /// `register-push-<service>`: the same device gets the same node and secret back every
    /// time (Conversations registers on every connect); only its token is updated.
    pub async fn register(
        &self,
        service: PushService,
        command: RegisterCommand<'_>,
    ) -> Result<Registration, CommandError> {
        if command.has_muc {
            return Err(CommandError::MucUnsupported);
        }
        let token = non_blank(command.token).ok_or(CommandError::MissingToken)?;
        if token.len() > MAX_PUSH_TOKEN_LEN {
            return Err(CommandError::TokenTooLong);
        }
        if !service.accepts_token(token) {
            return Err(CommandError::BadToken);
        }
        let device_id = device_id(&command).ok_or(CommandError::MissingDeviceId)?;
        let request = RegistrationRequest {
            service,
            device: DeviceHash::compute(command.bare_jid, device_id),
            domain: command.domain.to_owned(),
            account: AccountJid::new(command.bare_jid),
            max_devices_per_account: self.max_devices_per_account,
            token: token.to_owned(),
            fresh_node: Node::generate(),
            fresh_secret: Secret::generate(),
            now: self.clock.now(),
        };
        match self.store.register_device(request).await {
            Ok(registration) => Ok(registration),
            Err(StoreError::TooManyDevices(limit)) => Err(CommandError::TooManyDevices(limit)),
            Err(error) => Err(error.into()),
        }
    }

    /// `unregister-push-<service>`.
    pub async fn unregister(
        &self,
        service: PushService,
        command: RegisterCommand<'_>,
    ) -> Result<(), CommandError> {
        if command.has_muc {
            return Err(CommandError::MucUnsupported);
        }
        let device_id = device_id(&command).ok_or(CommandError::MissingDeviceId)?;
        let device = DeviceHash::compute(command.bare_jid, device_id);
        if self.store.unregister_device(service, &device).await? {
            Ok(())
        } else {
            Err(CommandError::UnknownDevice)
        }
    }

    /// A XEP-0357 publish: check, look up, wake.
    pub async fn publish(&self, request: PublishRequest<'_>) -> PublishOutcome {
        // The trace id joins the publish's log lines and trace events: a field of each info and
        // warn line, and at debug level the span of every line. (An info-level span would cost
        // each wake-up more than all the rest of this bookkeeping.)
        let trace_id = TraceId::new();
        async {
            let outcome = self.publish_traced(request, trace_id).await;
            tracing::debug!(?outcome, "publish answered");
            outcome
        }
        .instrument(tracing::debug_span!("publish", trace = %trace_id))
        .await
    }

    async fn publish_traced(
        &self,
        request: PublishRequest<'_>,
        trace_id: TraceId,
    ) -> PublishOutcome {
        // docs/protocol.md B §1.5: a resource in `from` or a missing node or secret is refused
        // before any lookup.
        let (Some(node), Some(secret)) = (request.node, request.secret) else {
            return PublishOutcome::Forbidden;
        };
        if request.from_has_resource {
            return PublishOutcome::Forbidden;
        }
        let registration = match self
            .store
            .find_registration(request.from_domain, node)
            .await
        {
            Ok(Some(registration)) => registration,
            Ok(None) => return PublishOutcome::NoSuchNode,
            Err(error) => {
                tracing::warn!(trace = %trace_id, %error, "publish: registration lookup failed");
                return PublishOutcome::InternalError;
            }
        };
        // Only a node that exists gets a trace: unknown nodes would let anyone fill the map.
        let traced = self
            .trace
            .as_ref()
            .map(|trace| (trace, trace.node_key(node)));
        // A publish that stops here is one event, "received", with why.
        let received = |outcome| {
            if let Some((trace, key)) = &traced {
                self.record(trace, key, Hop::PublishReceived, outcome, 0, trace_id);
            }
        };
        if !registration.secret.matches(secret) {
            received(TraceOutcome::Refused);
            return PublishOutcome::Forbidden;
        }
        if registration.dead_since.is_some() {
            // Asking FCM again about a token it called dead only spends quota.
            received(TraceOutcome::DeadToken);
            return PublishOutcome::TokenDead;
        }
        // A publish that goes on to the push service is one event, its answer: the trace keeps
        // 32 of them per device, and each costs its time on the hot path.
        let started = Instant::now();
        let outcome = match self.wake(&registration, trace_id).await {
            Woken::Outcome(outcome) => outcome,
            Woken::Superseded => {
                self.wake_superseded(&request, node, &registration, trace_id)
                    .await
            }
        };
        if let Some((trace, key)) = &traced {
            let answered = match outcome {
                PublishOutcome::Woken => TraceOutcome::Ok,
                PublishOutcome::TokenDead | PublishOutcome::NoSuchNode => TraceOutcome::DeadToken,
                PublishOutcome::Forbidden => TraceOutcome::Refused,
                PublishOutcome::Unavailable | PublishOutcome::InternalError => {
                    TraceOutcome::ServerError
                }
            };
            let latency = TraceEvent::saturating_micros(started.elapsed());
            self.record(
                trace,
                key,
                Hop::UpstreamAnswered,
                answered,
                latency,
                trace_id,
            );
        }
        outcome
    }

    fn record(
        &self,
        trace: &DeliveryTrace,
        key: &TraceKey,
        hop: Hop,
        outcome: TraceOutcome,
        latency_us: u32,
        trace_id: TraceId,
    ) {
        trace.record(
            key,
            TraceEvent {
                at: self.clock.now(),
                hop,
                outcome,
                latency_us,
                application: None,
                trace_id,
            },
        );
    }

    /// Wakes the device of `registration`; a dead token is marked dead in the store.
    async fn wake(&self, registration: &Registration, trace_id: TraceId) -> Woken {
        let Some(waker) = self.wakers.get(&registration.service) else {
            tracing::warn!(
                trace = %trace_id,
                service = %registration.service,
                device = ?registration.device,
                "publish for a service with no sender configured; answering wait"
            );
            return Woken::Outcome(PublishOutcome::Unavailable);
        };
        let outcome = waker
            .wake(WakeRequest {
                service: registration.service,
                token: &registration.token,
                device: Some(&registration.device),
            })
            .await;
        Woken::Outcome(match outcome {
            WakeOutcome::Accepted => PublishOutcome::Woken,
            WakeOutcome::TokenDead => {
                let marked = self
                    .store
                    .mark_token_dead(
                        registration.service,
                        &registration.device,
                        &registration.token,
                        self.clock.now(),
                    )
                    .await;
                match marked {
                    Ok(true) => PublishOutcome::TokenDead,
                    // Already marked, or the store holds another token now.
                    Ok(false) => return Woken::Superseded,
                    Err(error) => {
                        tracing::warn!(trace = %trace_id, %error, "publish: marking a dead token failed");
                        PublishOutcome::InternalError
                    }
                }
            }
            // A refused message (bad argument, sender mismatch) is the operator's problem or a
            // passing one; a cancel error would make ejabberd drop the user's registration.
            WakeOutcome::Transient(reason) => {
                tracing::info!(trace = %trace_id, device = ?registration.device, %reason, "wake-up not sent now");
                PublishOutcome::Unavailable
            }
            WakeOutcome::Rejected(reason) => {
                tracing::warn!(trace = %trace_id, device = ?registration.device, %reason, "wake-up refused");
                PublishOutcome::Unavailable
            }
        })
    }

    /// The token `used` was dead but the store did not mark it: either it was already marked,
    /// or the device registered a new token meanwhile (here or, with a shared database, on
    /// another instance; a cached lookup makes that window longer). A dead answer would make
    /// the user's server drop the registration (ejabberd deletes it on a cancel error), so a
    /// newer live token is woken instead, once.
    async fn wake_superseded(
        &self,
        request: &PublishRequest<'_>,
        node: &str,
        used: &Registration,
        trace_id: TraceId,
    ) -> PublishOutcome {
        let fresh = match self
            .store
            .find_registration(request.from_domain, node)
            .await
        {
            Ok(Some(fresh)) => fresh,
            // Unregistered meanwhile: the token woken is dead and nothing replaced it.
            Ok(None) => return PublishOutcome::TokenDead,
            Err(error) => {
                tracing::warn!(trace = %trace_id, %error, "publish: re-reading a registration failed");
                return PublishOutcome::InternalError;
            }
        };
        if fresh.token == used.token || fresh.dead_since.is_some() {
            return PublishOutcome::TokenDead;
        }
        tracing::debug!(device = ?fresh.device, "token replaced meanwhile; waking the new one");
        match self.wake(&fresh, trace_id).await {
            Woken::Outcome(outcome) => outcome,
            // Replaced again, or marked by a racing publish: the answer is not ours to improve.
            Woken::Superseded => PublishOutcome::TokenDead,
        }
    }
}

/// What one wake-up came to.
enum Woken {
    /// The publish's answer.
    Outcome(PublishOutcome),
    /// The token was dead, and the store did not mark it because it no longer held it alive.
    Superseded,
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

fn device_id<'a>(command: &RegisterCommand<'a>) -> Option<&'a str> {
    // p2's findDeviceId: `device-id` first, else `android-id`.
    non_blank(command.device_id).or_else(|| non_blank(command.android_id))
}

#[cfg(test)]
mod superseded_tests;
#[cfg(test)]
mod tests;
