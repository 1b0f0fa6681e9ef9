//! The handle every task uses to send through a component link.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::stanza::Stanza;

use crate::config::ComponentConfig;
use crate::link::error::{IqError, LinkError};
use crate::link::iq_tracker::IqTracker;
use crate::link::state::LinkState;
use crate::stream::writer::Outbound;

pub(crate) struct Shared {
    jid: BareJid,
    iq_timeout: Duration,
    address: Jid,
    tracker: Arc<IqTracker>,
    state: watch::Sender<LinkState>,
    /// Whether a handshake ever succeeded, so a link still trying for the first time can be
    /// told from one that was up and went down.
    ever_up: AtomicBool,
    // The current session's queue; `None` while the link is down.
    outbound: Mutex<Option<mpsc::Sender<Outbound>>>,
}

/// A handle on one XEP-0114 component link. Cheap to clone; every clone sends through the same
/// connection.
#[derive(Clone)]
pub struct ComponentLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ComponentLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentLink")
            .field("jid", &self.shared.jid.as_str())
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl ComponentLink {
    /// A link to `jid` that is not connected yet.
    pub(crate) fn new(jid: BareJid, config: &ComponentConfig) -> Self {
        let (state, _) = watch::channel(LinkState::Connecting);
        ComponentLink {
            shared: Arc::new(Shared {
                iq_timeout: config.timeouts.iq,
                address: Jid::from(jid.clone()),
                jid,
                tracker: Arc::new(IqTracker::new(config.instance_id.clone())),
                state,
                ever_up: AtomicBool::new(false),
                outbound: Mutex::new(None),
            }),
        }
    }

    /// The component JID.
    pub fn jid(&self) -> &BareJid {
        &self.shared.jid
    }

    /// The component JID as a [`Jid`], the `from` of everything the link sends.
    pub fn address(&self) -> &Jid {
        &self.shared.address
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.shared.state.borrow().clone()
    }

    /// Completes this instance's request with an answer that reached another instance's link
    /// (several instances share the component JID) and was handed over; the answer counts
    /// only on the same terms as one read here (its id pending, its sender the one asked).
    /// Whether it answered a request.
    pub fn resolve_forwarded(&self, answer: Iq) -> bool {
        if !matches!(answer, Iq::Result { .. } | Iq::Error { .. }) {
            return false;
        }
        self.shared.tracker.resolve(answer) == crate::link::iq_tracker::Resolution::Answered
    }

    /// This process's instance id, the first part of its IQ ids.
    pub fn instance_id(&self) -> &str {
        self.shared.tracker.instance_id()
    }

    /// Whether stanzas can be sent now (cheaper than [`Self::state`]: nothing is cloned).
    pub fn is_up(&self) -> bool {
        self.shared.state.borrow().is_up()
    }

    /// Whether the link was ever up since it was spawned.
    pub fn was_ever_up(&self) -> bool {
        self.shared.ever_up.load(Ordering::Relaxed)
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.subscribe()
    }

    /// Outgoing IQs waiting for their answer.
    pub fn pending_iqs(&self) -> usize {
        self.shared.tracker.len()
    }

    /// A fresh IQ id, `<instance>.<counter>`.
    pub fn next_iq_id(&self) -> String {
        self.shared.tracker.next_id()
    }

    /// Queues a stanza, waiting for queue space. A missing `from` becomes the component JID;
    /// a stanza without `to`, or from outside the component's domain, is refused.
    pub async fn send(&self, stanza: impl Into<Stanza>) -> Result<(), LinkError> {
        let mut stanza = stanza.into();
        self.address_check(&mut stanza)?;
        let queue = self.queue()?;
        queue
            .send(Outbound::Stanza(stanza))
            .await
            .map_err(|_| LinkError::Down)
    }

    /// Queues a stanza without waiting: [`LinkError::QueueFull`] when the queue is full.
    pub fn try_send(&self, stanza: impl Into<Stanza>) -> Result<(), LinkError> {
        let mut stanza = stanza.into();
        self.address_check(&mut stanza)?;
        let queue = self.queue()?;
        queue
            .try_send(Outbound::Stanza(stanza))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LinkError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => LinkError::Down,
            })
    }

    /// Sends an IQ get/set and waits for its answer (a result or an error IQ) until `timeout`.
    ///
    /// The id is replaced by a fresh `<instance>.<counter>`. Only an answer from the request's
    /// `to` counts. If the link drops meanwhile, this fails at once with
    /// [`IqError::LinkDown`].
    pub async fn send_iq(&self, mut iq: Iq, timeout: Duration) -> Result<Iq, IqError> {
        if !matches!(iq, Iq::Get { .. } | Iq::Set { .. }) {
            return Err(IqError::NotARequest);
        }
        let Some(to) = iq.to().cloned() else {
            return Err(IqError::NotARequest);
        };
        let id = self.shared.tracker.next_id();
        *iq.id_mut() = id.clone();
        let (_pending, answer) =
            self.shared
                .tracker
                .register(id, to, tokio::time::Instant::now() + timeout);
        exchange(self.send(iq), answer).await
    }

    /// [`Self::send_iq`] for an IQ get/set the caller wrote as bytes: `iq` must be one complete
    /// `<iq/>` from the component JID to `to` whose id is `id`, fresh from
    /// [`Self::next_iq_id`], written exactly as the serialiser would write it. The bytes are
    /// sent as they are, so the usual address check is the caller's.
    pub(crate) async fn send_encoded_iq(
        &self,
        id: String,
        to: Jid,
        iq: Bytes,
        timeout: Duration,
    ) -> Result<Iq, IqError> {
        let (_pending, answer) =
            self.shared
                .tracker
                .register(id, to, tokio::time::Instant::now() + timeout);
        let send = async {
            let queue = self.queue()?;
            queue
                .send(Outbound::Encoded(iq))
                .await
                .map_err(|_| LinkError::Down)
        };
        exchange(send, answer).await
    }

    /// XEP-0114 §4: the server checks the addresses of what a component sends and closes the
    /// stream on a bad one, so one bad stanza is refused here instead.
    /// [`Self::send_iq`] with the configured default deadline (`LinkTimeouts::iq`).
    pub async fn request(&self, iq: Iq) -> Result<Iq, IqError> {
        self.send_iq(iq, self.shared.iq_timeout).await
    }

    fn address_check(&self, stanza: &mut Stanza) -> Result<(), LinkError> {
        let (from, to) = match stanza {
            Stanza::Iq(iq) => {
                let to = iq.to().is_some();
                (iq.from_mut(), to)
            }
            Stanza::Message(message) => (&mut message.from, message.to.is_some()),
            Stanza::Presence(presence) => (&mut presence.from, presence.to.is_some()),
        };
        if !to {
            return Err(LinkError::Misaddressed("no `to` address"));
        }
        match from {
            None => *from = Some(self.shared.address.clone()),
            Some(jid) if jid.domain() != self.shared.jid.domain() => {
                return Err(LinkError::Misaddressed(
                    "`from` outside the component's domain",
                ));
            }
            Some(_) => (),
        }
        Ok(())
    }

    fn outbound(&self) -> MutexGuard<'_, Option<mpsc::Sender<Outbound>>> {
        self.shared
            .outbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> Result<mpsc::Sender<Outbound>, LinkError> {
        self.outbound().clone().ok_or(LinkError::Down)
    }

    pub(crate) fn attach(&self, queue: mpsc::Sender<Outbound>) {
        *self.outbound() = Some(queue);
        self.set_state(LinkState::Connected);
    }

    /// Stops accepting stanzas; the writer sees the queue close once in-flight sends finish.
    pub(crate) fn detach(&self) {
        self.outbound().take();
    }

    pub(crate) fn shared_tracker(&self) -> &Arc<IqTracker> {
        &self.shared.tracker
    }

    pub(crate) fn set_state(&self, state: LinkState) {
        if state.is_up() {
            self.shared.ever_up.store(true, Ordering::Relaxed);
        }
        let component = self.jid().to_string();
        crate::metrics::component_connected(&component, state.is_up());
        crate::metrics::component_standby(&component, state == LinkState::Standby);
        self.shared.state.send_replace(state);
    }
}

/// Queues a request with `send` and waits for its `answer`, which the tracker fails at the
/// deadline: also while the request still waits for room in a full queue.
async fn exchange(
    send: impl Future<Output = Result<(), LinkError>>,
    mut answer: oneshot::Receiver<Result<Iq, IqError>>,
) -> Result<Iq, IqError> {
    tokio::select! {
        biased;
        sent = send => sent?,
        answered = &mut answer => return answered.unwrap_or(Err(IqError::LinkDown)),
    }
    answer.await.unwrap_or(Err(IqError::LinkDown))
}
