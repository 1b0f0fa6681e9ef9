//! Routing of each element the reader receives: built-in answers, IQ answers to our own
//! requests, handler tasks, and replies to broken stanzas.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::iq::{Iq, IqHeader, IqRequestPayload};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};
use xmpp_parsers::stream_error::DefinedCondition as StreamCondition;

use crate::config::{ComponentConfig, ForeignAnswers};
use crate::link::budget::{Admission, Held, RequestBudget};
use crate::link::builtin;
use crate::link::component_link::ComponentLink;
use crate::link::error::SessionError;
use crate::link::handler::{FastRequest, IqReply, StanzaHandler};
use crate::link::iq_tracker::Resolution;
use crate::stream::fast_stanza::IqSetChild;
use crate::stream::inbound::{ElementKind, Inbound, IqHeaderAttrs};

/// Routes the elements of one session.
pub(crate) struct Dispatcher {
    link: ComponentLink,
    handler: Arc<dyn StanzaHandler>,
    tasks: TaskTracker,
    budget: RequestBudget,
    keepalive_timeout: Duration,
    ping_targets: Vec<Jid>,
    foreign_answers: Option<Arc<dyn ForeignAnswers>>,
}

/// Where keepalive pings go: the component's own JID, which both Prosody and ejabberd route
/// back to us, and the parent domain (the usual host of a component), which answers even
/// when ejabberd spreads our own JID's traffic over several connections. Any answer, or any
/// other input, proves the link alive.
fn ping_targets(link: &ComponentLink) -> Vec<Jid> {
    let own = link.address().clone();
    let parent = link
        .jid()
        .domain()
        .as_str()
        .split_once('.')
        .and_then(|(_, parent)| Jid::new(parent).ok());
    std::iter::once(own).chain(parent).collect()
}

impl Dispatcher {
    pub(crate) fn new(
        link: &ComponentLink,
        handler: &Arc<dyn StanzaHandler>,
        tasks: &TaskTracker,
        budget: &RequestBudget,
        config: &ComponentConfig,
    ) -> Self {
        Self {
            link: link.clone(),
            handler: Arc::clone(handler),
            tasks: tasks.clone(),
            budget: budget.clone(),
            keepalive_timeout: config.timeouts.keepalive_timeout,
            ping_targets: ping_targets(link),
            foreign_answers: config.foreign_answers.clone(),
        }
    }

    /// Handles one element of `wire_bytes`; `Some` ends the session. While `draining`
    /// (shutdown), only answers to our own IQs are taken; new requests are turned away.
    pub(crate) async fn dispatch(
        &self,
        inbound: Inbound,
        wire_bytes: usize,
        draining: bool,
    ) -> Option<SessionError> {
        match inbound {
            Inbound::Element(XmppStreamElement::Stanza(stanza)) if draining => {
                self.turn_away(stanza).await;
            }
            Inbound::Element(XmppStreamElement::Stanza(stanza)) => match stanza {
                Stanza::Iq(iq) => self.on_iq(iq, wire_bytes).await,
                Stanza::Message(message) => {
                    let (handler, link) = (Arc::clone(&self.handler), self.link.clone());
                    self.spawn_bounded(wire_bytes, async move {
                        handler.handle_message(&link, message).await;
                    })
                    .await;
                }
                Stanza::Presence(presence) => {
                    // On the reading task: see `StanzaHandler::handle_presence`.
                    self.handler.handle_presence(&self.link, presence).await;
                }
            },
            Inbound::Element(XmppStreamElement::StreamError(error)) => {
                return Some(match error.0.condition {
                    StreamCondition::Conflict => SessionError::Conflict,
                    other => SessionError::StreamError(other),
                });
            }
            Inbound::Element(other) => {
                tracing::debug!(element = ?other, "ignoring an unexpected nonza");
            }
            Inbound::Invalid {
                kind,
                header,
                error,
            } => {
                tracing::warn!(?kind, %error, "malformed stanza");
                count_rejected("malformed");
                self.reject(kind, header, DefinedCondition::BadRequest)
                    .await;
            }
            Inbound::Skipped {
                kind,
                header,
                reason,
            } => {
                tracing::warn!(?kind, reason = reason.as_str(), "stanza skipped");
                count_rejected(reason.label());
                // RFC 6120 §8.3.3.12: a stanza over a local limit violates the service's
                // policy; one that does not parse is a bad request (§8.3.3.1).
                let condition = if reason.is_limit() {
                    DefinedCondition::PolicyViolation
                } else {
                    DefinedCondition::BadRequest
                };
                self.reject(kind, header, condition).await;
            }
        }
        None
    }

    async fn turn_away(&self, stanza: Stanza) {
        match stanza {
            Stanza::Iq(Iq::Get { from, to, id, .. } | Iq::Set { from, to, id, .. }) => {
                // A `wait` error: the sender may retry, and no server counts it against a
                // push registration (docs/protocol.md A.2).
                self.reply(IqHeader { from, to, id }, busy()).await;
            }
            Stanza::Iq(answer) => self.on_answer(answer),
            Stanza::Message(_) | Stanza::Presence(_) => {
                tracing::debug!("shutting down: dropping an incoming message or presence");
            }
        }
    }

    /// A result or error: for one of this instance's requests, or, when its id names another
    /// instance that shares the component JID, for that one.
    fn on_answer(&self, answer: Iq) {
        let tracker = self.link.shared_tracker();
        if let Some(forward) = &self.foreign_answers
            && let Some((instance, _)) = answer.id().split_once('.')
            && instance != tracker.instance_id()
        {
            let instance = instance.to_owned();
            forward.forward(&instance, answer);
            return;
        }
        match tracker.resolve(answer) {
            Resolution::Answered => (),
            Resolution::Unsolicited => {
                tracing::debug!("dropping an IQ answer nobody asked for");
            }
            Resolution::WrongSender => {
                tracing::warn!("dropping an IQ answer from a sender that was not asked");
                count_rejected("spoofed_answer");
            }
        }
    }

    async fn on_iq(&self, iq: Iq, wire_bytes: usize) {
        let (header, payload) = match iq {
            Iq::Get {
                from,
                to,
                id,
                payload,
            } => (IqHeader { from, to, id }, IqRequestPayload::Get(payload)),
            Iq::Set {
                from,
                to,
                id,
                payload,
            } => (IqHeader { from, to, id }, IqRequestPayload::Set(payload)),
            answer @ (Iq::Result { .. } | Iq::Error { .. }) => {
                self.on_answer(answer);
                return;
            }
        };
        if let Some(reply) = builtin::answer(&*self.handler, &payload) {
            self.reply(header, reply).await;
            return;
        }
        let Some(admission) = self.admit(&header, wire_bytes).await else {
            return;
        };
        let (handler, link) = (Arc::clone(&self.handler), self.link.clone());
        self.tasks.spawn(async move {
            let Some(permit) = turn(admission, &link, &header).await else {
                return;
            };
            let reply = handler.handle_iq(&link, &header, payload).await;
            send_reply(&link, header, reply.unwrap_or_else(unhandled)).await;
            drop(permit);
        });
    }

    /// Offers an IQ set to the handler's fast path ([`StanzaHandler::read_fast`]).
    pub(crate) fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        self.handler.read_fast(set)
    }

    /// Handles a request the handler read straight from its bytes; while `draining`, it is
    /// turned away like any new request.
    pub(crate) async fn dispatch_fast(&self, request: FastRequest, draining: bool) {
        let FastRequest { header, answer } = request;
        if draining {
            self.reply(header, busy()).await;
            return;
        }
        // What the handler kept of its bytes is small (a publish holds only its node and
        // secret), so it does not count against the bytes in flight.
        let Some(admission) = self.admit(&header, 0).await else {
            return;
        };
        let link = self.link.clone();
        self.tasks.spawn(async move {
            let Some(permit) = turn(admission, &link, &header).await else {
                return;
            };
            let reply = answer.answer(&header).await;
            send_reply(&link, header, reply.unwrap_or_else(unhandled)).await;
            drop(permit);
        });
    }

    /// Room for one more request, now or after a wait in the queue; without it the request
    /// is answered here.
    async fn admit(&self, header: &IqHeader, wire_bytes: usize) -> Option<Admission> {
        match self.budget.admit(wire_bytes) {
            Ok(admission) => Some(admission),
            Err(refusal) => {
                // A `wait` error makes the sender retry later without counting it against us
                // (docs/protocol.md A.2).
                tracing::debug!(reason = refusal.as_str(), "IQ request refused: overloaded");
                count_rejected(refusal.label());
                pushgate_core::metric_handles::LOAD_SHED.increment(refusal.label(), 1);
                self.reply(copy_of(header), busy()).await;
                None
            }
        }
    }

    /// Answers a broken or over-limit IQ get/set with `condition` (modify), when it can be
    /// addressed at all.
    async fn reject(&self, kind: ElementKind, header: IqHeaderAttrs, condition: DefinedCondition) {
        if kind != ElementKind::Iq || !header.is_request() {
            return;
        }
        let IqHeaderAttrs { id, from, to, .. } = header;
        let (Some(id), Some(from)) = (id, from.and_then(|f| Jid::new(&f).ok())) else {
            return;
        };
        let to = to.and_then(|t| Jid::new(&t).ok());
        let header = IqHeader {
            from: Some(from),
            to,
            id,
        };
        self.reply(header, IqReply::error(ErrorType::Modify, condition))
            .await;
    }

    async fn reply(&self, header: IqHeader, reply: IqReply) {
        send_reply(&self.link, header, reply).await;
    }

    async fn spawn_bounded(
        &self,
        wire_bytes: usize,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        // Waiting for room here slows the reader down instead of dropping the stanza.
        let Some(permit) = self.budget.wait_for(wire_bytes).await else {
            return;
        };
        self.tasks.spawn(async move {
            work.await;
            drop(permit);
        });
    }

    /// After read silence: ping, so that a live server answers before the hard timeout.
    pub(crate) fn keepalive(&self) {
        tracing::debug!("read silence: sending keepalive pings");
        for target in &self.ping_targets {
            let ping = Iq::from_get(String::new(), Ping).with_to(target.clone());
            let (link, deadline) = (self.link.clone(), self.keepalive_timeout);
            self.tasks.spawn(async move {
                if let Err(error) = link.send_iq(ping, deadline).await {
                    tracing::debug!(%error, "keepalive ping unanswered");
                }
            });
        }
    }
}

/// The request's turn to run: at once, or after its wait in the queue. A request whose turn
/// did not come within the queue wait is answered `resource-constraint` (wait) here.
async fn turn(admission: Admission, link: &ComponentLink, header: &IqHeader) -> Option<Held> {
    let queued = match admission {
        Admission::Now(held) => return Some(held),
        Admission::Queued(queued) => queued,
    };
    let held = queued.turn().await;
    if held.is_none() {
        count_rejected("iq_queue_wait");
        pushgate_core::metric_handles::LOAD_SHED.increment("iq_queue_wait", 1);
        send_reply(link, copy_of(header), busy()).await;
    }
    held
}

/// `IqHeader` is not `Clone`; the handler keeps the request's, the refusal needs its own.
fn copy_of(header: &IqHeader) -> IqHeader {
    IqHeader {
        from: header.from.clone(),
        to: header.to.clone(),
        id: header.id.clone(),
    }
}

async fn send_reply(link: &ComponentLink, header: IqHeader, reply: IqReply) {
    if header.from.is_none() {
        // A stanza without `to` would make ejabberd close the stream (improper-addressing).
        tracing::debug!("not answering an IQ without a sender");
        return;
    }
    if let Err(error) = link.send(reply.into_iq(header)).await {
        tracing::debug!(%error, "IQ reply not sent");
    }
}

/// A `wait` error: the sender may retry, and no server counts it against a push
/// registration (docs/protocol.md A.2).
fn busy() -> IqReply {
    IqReply::error(ErrorType::Wait, DefinedCondition::ResourceConstraint)
}

fn unhandled() -> IqReply {
    IqReply::error(ErrorType::Cancel, DefinedCondition::ServiceUnavailable)
}

fn count_rejected(reason: &'static str) {
    crate::metrics::stanza_refused(reason);
}
