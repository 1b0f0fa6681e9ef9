//! The two push roles on a component link: the XEP-0357 app server (p2) and the UnifiedPush
//! provider (up). [`PushRoles`] is the link's [`StanzaHandler`]: it reads the stanzas, calls
//! `pushgate-core`'s [`AppServer`] and [`Provider`], and writes their outcomes back as stanzas.
//! [`XmppClientLink`] is the provider's way back to the clients.

mod client_link;
mod commands;
mod forms;
mod publish;
mod publish_wire;
mod register_push;
mod up_register;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushgate_core::app_server::AppServer;
use pushgate_core::provider::Provider;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::iq::{IqHeader, IqRequestPayload};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::ns;
use xmpp_parsers::presence::{self, Presence};

use crate::link::component_link::ComponentLink;
use crate::link::handler::{FastRequest, IqReply, StanzaHandler};
use crate::stream::fast_stanza::IqSetChild;

pub use client_link::{AlreadyAttached, DEFAULT_PUSH_DEADLINE, XmppClientLink};
pub use commands::COMMANDS;
pub use publish::PushPublish;

/// The namespace of the UnifiedPush elements (`register`, `registered`, `push`).
pub const UNIFIED_PUSH: &str = "http://gultsch.de/xmpp/drafts/unified-push";

/// The first wait before a flush the database failed is tried again; it doubles each time.
const FLUSH_RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries of a failed flush.
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(10);

/// The stanza handler of one component link serving either role or both.
///
/// A role that is off is not announced in disco, and its requests are answered
/// `service-unavailable` like any unknown request (docs/protocol.md A.1). Store-and-forward flushes
/// (on available presence and on each link-up) run on tasks of their own, so the reader never
/// waits for a client; [`PushRoles::close_and_wait`] awaits them on shutdown.
pub struct PushRoles {
    component: BareJid,
    app_server: Option<Arc<AppServer>>,
    provider: Option<Arc<Provider>>,
    tasks: TaskTracker,
    /// Cancelled on shutdown: flushes waiting to try again stop.
    closing: CancellationToken,
}

impl std::fmt::Debug for PushRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRoles")
            .field("component", &self.component.as_str())
            .field("app_server", &self.app_server.is_some())
            .field("provider", &self.provider.is_some())
            .finish()
    }
}

/// Which role a request payload belongs to.
enum Request {
    Command,
    Pubsub,
    UpRegister,
}

impl Request {
    fn of(payload: &xmpp_parsers::minidom::Element) -> Option<Self> {
        if payload.is("pubsub", ns::PUBSUB) {
            Some(Self::Pubsub)
        } else if payload.is("command", COMMANDS) {
            Some(Self::Command)
        } else if payload.is("register", UNIFIED_PUSH) {
            Some(Self::UpRegister)
        } else {
            None
        }
    }
}

impl PushRoles {
    /// The handler of the link whose JID is `component` (named in the command list of
    /// disco#items), with the app server role when `app_server` is given and the provider
    /// role when `provider` is given.
    pub fn new(
        component: BareJid,
        app_server: Option<Arc<AppServer>>,
        provider: Option<Arc<Provider>>,
    ) -> Self {
        Self {
            component,
            app_server,
            provider,
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
        }
    }

    /// Flushes still running (for tests and shutdown reports).
    pub fn running_flushes(&self) -> usize {
        self.tasks.len()
    }

    /// Waits for the running flushes. Call it after the link has stopped: without a link
    /// every push fails at once, so each flush ends at its next message.
    pub async fn close_and_wait(&self) {
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Flushes `owner`'s kept messages, or everyone's; a flush the database failed is tried
    /// again with a growing delay until it succeeds or pushgate shuts down, so accepted
    /// messages never wait for the next presence or link-up.
    fn spawn_flush(&self, provider: &Arc<Provider>, owner: Option<Jid>) {
        let provider = Arc::clone(provider);
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let mut retry_in = FLUSH_RETRY_FIRST;
            loop {
                let report = match &owner {
                    Some(owner) => provider.flush_owner(owner.as_str()).await,
                    None => provider.flush_all().await,
                };
                if report.delivered + report.revoked + report.unopenable > 0 || report.interrupted {
                    tracing::debug!(?report, "stored UnifiedPush messages flushed");
                }
                if !report.failed {
                    return;
                }
                metrics::counter!("pushgate_up_flush_retries_total").increment(1);
                tokio::select! {
                    () = closing.cancelled() => return,
                    () = tokio::time::sleep(retry_in) => (),
                }
                retry_in = (retry_in * 2).min(FLUSH_RETRY_MAX);
            }
        });
    }
}

#[async_trait]
impl StanzaHandler for PushRoles {
    fn identities(&self) -> Vec<Identity> {
        // XEP-0357: an app server is a pubsub service of type `push`.
        let (category, type_) = if self.app_server.is_some() {
            ("pubsub", "push")
        } else {
            ("component", "generic")
        };
        vec![Identity::new_anonymous::<_, _, String, String>(
            category, type_,
        )]
    }

    fn features(&self) -> Vec<String> {
        let mut features = Vec::new();
        if self.app_server.is_some() {
            features.push(COMMANDS.to_owned());
            features.push(ns::PUSH.to_owned());
        }
        if self.provider.is_some() {
            features.push(UNIFIED_PUSH.to_owned());
        }
        features
    }

    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        self.app_server.as_ref()?;
        commands::node_info(node)
    }

    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        match node {
            Some(COMMANDS) if self.app_server.is_some() => commands::items(&self.component),
            _ => Vec::new(),
        }
    }

    async fn handle_iq(
        &self,
        link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> Option<IqReply> {
        let (is_set, payload) = match payload {
            IqRequestPayload::Get(payload) => (false, payload),
            IqRequestPayload::Set(payload) => (true, payload),
        };
        let reply = match Request::of(&payload)? {
            Request::Pubsub => {
                let app_server = self.app_server.as_ref()?;
                publish::handle_pubsub(app_server, request, is_set, payload).await
            }
            Request::Command => {
                let app_server = self.app_server.as_ref()?;
                register_push::execute(app_server, link.jid(), request, is_set, &payload).await
            }
            Request::UpRegister => {
                let provider = self.provider.as_ref()?;
                up_register::handle(provider, request, is_set, &payload)
            }
        };
        Some(reply)
    }

    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        // The app server reads its publishes straight from the wire (the hot path).
        let app_server = self.app_server.as_ref()?;
        let (request, publish) = publish_wire::read(set)?;
        let answer = publish::FastPublish {
            app_server: Arc::clone(app_server),
            publish,
        };
        Some(FastRequest {
            header: request.into(),
            answer: Box::new(answer),
        })
    }

    async fn handle_presence(&self, _link: &ComponentLink, presence: Presence) {
        let Some(provider) = &self.provider else {
            return;
        };
        // RFC 6121 §4.2: available presence has no type. Unavailable presence, probes and
        // subscription requests change nothing here.
        if presence.type_ != presence::Type::None {
            return;
        }
        // Messages are kept per full JID (the owner in the endpoint token). Presence is sent
        // on every bind by every client of the server, so only an owner with kept messages
        // starts a flush.
        if let Some(owner) = presence.from.filter(Jid::is_full)
            && provider.may_have_messages(owner.as_str())
        {
            self.spawn_flush(provider, Some(owner));
        }
    }

    async fn link_up(&self, _link: &ComponentLink) {
        if let Some(provider) = &self.provider {
            self.spawn_flush(provider, None);
        }
    }
}
