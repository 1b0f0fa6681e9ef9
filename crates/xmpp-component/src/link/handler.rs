//! What the services plug into a link: the handler of incoming stanzas and its replies.

use async_trait::async_trait;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::iq::{Iq, IqHeader, IqRequestPayload};
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use crate::link::component_link::ComponentLink;
use crate::stream::fast_stanza::IqSetChild;
pub use crate::stream::short_answer::stanza_error;

/// The answer to an IQ get/set.
#[derive(Debug, Clone, PartialEq)]
pub enum IqReply {
    /// `type='result'`, with an optional payload.
    Result(Option<Element>),
    /// `type='error'`.
    Error(StanzaError),
}

impl IqReply {
    /// An empty result.
    pub fn empty() -> Self {
        Self::Result(None)
    }

    /// A result carrying `payload`.
    pub fn result(payload: impl Into<Element>) -> Self {
        Self::Result(Some(payload.into()))
    }

    /// An error without text; the `<error/>` is written in the stream's default namespace.
    pub fn error(type_: ErrorType, condition: DefinedCondition) -> Self {
        Self::Error(stanza_error(type_, condition))
    }

    /// Addresses the reply to the request: from its `to`, to its `from`, same id.
    pub fn into_iq(self, request: IqHeader) -> Iq {
        let IqHeader { from, to, id } = request;
        match self {
            Self::Result(payload) => Iq::Result {
                from: to,
                to: from,
                id,
                payload,
            },
            Self::Error(error) => Iq::Error {
                from: to,
                to: from,
                id,
                error,
                payload: None,
            },
        }
    }
}

/// What a role read straight from the bytes of a request (through
/// [`StanzaHandler::read_fast`]), ready to answer it.
#[async_trait]
pub trait FastAnswer: Send + 'static {
    /// Answers the request addressed `request`; `None` answers `service-unavailable` (cancel).
    async fn answer(self: Box<Self>, request: &IqHeader) -> Option<IqReply>;
}

/// A request a role read straight from its bytes: its addressing and the role's answer to come.
pub struct FastRequest {
    pub(crate) header: IqHeader,
    pub(crate) answer: Box<dyn FastAnswer>,
}

/// The services' side of a link.
///
/// The link answers disco#info, disco#items and XEP-0199 ping itself, tracks the answers to its
/// own IQs, and passes everything else here. Each IQ get/set runs on its own task, so a slow
/// handler never stalls the reader.
#[async_trait]
pub trait StanzaHandler: Send + Sync + 'static {
    /// disco#info identities (default: one `component`/`generic`).
    fn identities(&self) -> Vec<Identity> {
        vec![Identity::new_anonymous::<_, _, String, String>(
            "component",
            "generic",
        )]
    }

    /// Extra disco#info features (e.g. `http://jabber.org/protocol/commands`,
    /// `urn:xmpp:push:0`); the link adds disco#info, disco#items and `urn:xmpp:ping`.
    fn features(&self) -> Vec<String> {
        Vec::new()
    }

    /// disco#info of a node (e.g. an ad-hoc command); `None` answers `item-not-found`.
    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        let _ = node;
        None
    }

    /// disco#items for a node (e.g. the command list for `http://jabber.org/protocol/commands`).
    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        let _ = node;
        Vec::new()
    }

    /// An IQ get/set the link does not answer itself. The returned reply is addressed and sent
    /// by the link; `None` answers `service-unavailable` (cancel).
    async fn handle_iq(
        &self,
        link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> Option<IqReply> {
        let _ = (link, request, payload);
        None
    }

    /// The link's fast-path hook: an IQ set, read up to the start tag of its only child,
    /// before any element tree is built. A handler that reads this shape straight from the
    /// bytes returns the request with its answer to come; `None` (the default) leaves the
    /// stanza to the full parser and [`Self::handle_iq`]. Called on the reading task for every
    /// IQ set, so it must be quick and must not wait.
    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        let _ = set;
        None
    }

    /// An incoming presence. Called on the reading task, in the order presences arrive, so it
    /// must be quick: a handler with slow work to do (a flush) starts a task of its own. A
    /// server sends presence for every client that binds; a task per presence would make a
    /// burst of them cost a task each before any ran.
    async fn handle_presence(&self, link: &ComponentLink, presence: Presence) {
        let _ = (link, presence);
    }

    /// An incoming message.
    async fn handle_message(&self, link: &ComponentLink, message: Message) {
        let _ = (link, message);
    }

    /// Called each time the link is (re)established, right after the handshake.
    async fn link_up(&self, link: &ComponentLink) {
        let _ = link;
    }
}
