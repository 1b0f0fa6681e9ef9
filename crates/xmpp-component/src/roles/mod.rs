//! The roles on a component link: the XEP-0357 app server (p2, `app_server`), the
//! token-in-node app server (Monal's, fpush's protocol, `push_modules`) and the UnifiedPush
//! provider (up, `unified_push`). Each is a [`Role`]; [`PushRoles`] is the link's
//! [`StanzaHandler`] and hands each stanza to the role it belongs to. The roles call
//! `pushgate-core`'s [`AppServer`] and [`Provider`] and write their outcomes back as stanzas.
//! [`XmppClientLink`] is the provider's way back to the clients.
//!
//! Adding a role: a file here implementing [`Role`], and one line in [`PushRoles::new`].

mod app_server;
mod client_link;
mod commands;
mod forms;
mod publish;
mod publish_wire;
mod push_module;
mod push_status;
mod register_push;
mod unified_push;
mod up_register;

use std::sync::Arc;

use async_trait::async_trait;
use pushgate_core::app_server::AppServer;
use pushgate_core::provider::Provider;
use pushgate_core::push_module::PushModules;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::iq::{IqHeader, IqRequestPayload};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::presence::Presence;

use crate::link::component_link::ComponentLink;
use crate::link::handler::{FastRequest, IqReply, StanzaHandler};
use crate::stream::fast_stanza::IqSetChild;

pub use client_link::{AlreadyAttached, DEFAULT_PUSH_DEADLINE, XmppClientLink};
pub use commands::COMMANDS;
pub use publish::PushPublish;

/// The namespace of the UnifiedPush elements (`register`, `registered`, `push`).
pub const UNIFIED_PUSH: &str = "http://gultsch.de/xmpp/drafts/unified-push";

/// The shape of an IQ set's only child that a role reads straight from the wire: its name and
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastShape {
    /// The child's local name.
    pub name: &'static str,
    /// The child's namespace.
    pub namespace: &'static str,
}

/// One role on a component link: what it announces in disco, and the stanzas it takes.
#[async_trait]
pub trait Role: Send + Sync + 'static {
    /// The disco#info identity the role gives the component; the first role's wins, and
    /// without one the component is `component`/`generic`.
    fn identity(&self) -> Option<Identity> {
        None
    }

    /// The disco#info features the role adds.
    fn features(&self) -> Vec<String> {
        Vec::new()
    }

    /// disco#info of a node the role owns.
    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        let _ = node;
        None
    }

    /// disco#items of a node the role owns.
    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        let _ = node;
        Vec::new()
    }

    /// Whether `payload`, the child of an IQ get/set, is a request of this role.
    fn takes(&self, payload: &Element) -> bool;

    /// Answers a request [`Self::takes`].
    async fn handle_iq(
        &self,
        link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> IqReply;

    /// The shape of IQ set the role reads straight from the wire through [`Self::read_fast`].
    fn fast_shape(&self) -> Option<FastShape> {
        None
    }

    /// Reads an IQ set whose child has [`Self::fast_shape`]; `None` leaves it to the full
    /// parser and [`Self::handle_iq`].
    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        let _ = set;
        None
    }

    /// An incoming presence.
    async fn handle_presence(&self, link: &ComponentLink, presence: &Presence) {
        let _ = (link, presence);
    }

    /// Called each time the link is (re)established.
    async fn link_up(&self, link: &ComponentLink) {
        let _ = link;
    }

    /// Tasks of the role still running (for tests and shutdown reports).
    fn running_tasks(&self) -> usize {
        0
    }

    /// Stops the role's tasks and waits for them; called after the link has stopped.
    async fn close_and_wait(&self) {}
}

/// The stanza handler of one component link serving its roles.
///
/// A role that is off is not in the list: it is not announced in disco, and its requests are
/// answered `service-unavailable` like any unknown request (docs/protocol.md A.1).
pub struct PushRoles {
    roles: Vec<Arc<dyn Role>>,
    /// The roles that read a shape of IQ set straight from the wire, with that shape.
    fast: Vec<(FastShape, Arc<dyn Role>)>,
}

impl std::fmt::Debug for PushRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRoles")
            .field("roles", &self.roles.len())
            .finish()
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
        Self::serving(component, app_server, None, provider)
    }

    /// [`new`](Self::new), with the token-in-node role when `push_modules` is given. It and the
    /// app server both take publishes: a link serves one of them (the settings see to it),
    /// and the app server wins if given both.
    pub fn serving(
        component: BareJid,
        app_server: Option<Arc<AppServer>>,
        push_modules: Option<Arc<PushModules>>,
        provider: Option<Arc<Provider>>,
    ) -> Self {
        // The roles, in the order disco announces them.
        let roles: Vec<Option<Arc<dyn Role>>> = vec![
            app_server.map(|a| Arc::new(app_server::AppServerRole::new(component.clone(), a)) as _),
            push_modules.map(|m| Arc::new(push_module::PushModuleRole::new(m)) as _),
            provider.map(|p| Arc::new(unified_push::UnifiedPushRole::new(component, p)) as _),
        ];
        Self::with_roles(roles.into_iter().flatten().collect())
    }

    /// The handler of a link serving `roles`, in this order.
    pub fn with_roles(roles: Vec<Arc<dyn Role>>) -> Self {
        let fast = roles
            .iter()
            .filter_map(|role| Some((role.fast_shape()?, Arc::clone(role))))
            .collect();
        Self { roles, fast }
    }

    /// Role tasks still running, such as flushes (for tests and shutdown reports).
    pub fn running_flushes(&self) -> usize {
        self.roles.iter().map(|role| role.running_tasks()).sum()
    }

    /// Waits for the roles' running tasks. Call it after the link has stopped: without a link
    /// every push fails at once, so each flush ends at its next message.
    pub async fn close_and_wait(&self) {
        for role in &self.roles {
            role.close_and_wait().await;
        }
    }
}

#[async_trait]
impl StanzaHandler for PushRoles {
    fn identities(&self) -> Vec<Identity> {
        let identity = self.roles.iter().find_map(|role| role.identity());
        vec![identity.unwrap_or_else(|| {
            Identity::new_anonymous::<_, _, String, String>("component", "generic")
        })]
    }

    fn features(&self) -> Vec<String> {
        // Both roles offer ad-hoc commands: each feature once, in the roles' order.
        let mut features: Vec<String> = Vec::new();
        for feature in self.roles.iter().flat_map(|role| role.features()) {
            if !features.contains(&feature) {
                features.push(feature);
            }
        }
        features
    }

    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        self.roles.iter().find_map(|role| role.node_info(node))
    }

    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        self.roles
            .iter()
            .flat_map(|role| role.items(node))
            .collect()
    }

    async fn handle_iq(
        &self,
        link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> Option<IqReply> {
        let child = match &payload {
            IqRequestPayload::Get(child) | IqRequestPayload::Set(child) => child,
        };
        let role = self.roles.iter().find(|role| role.takes(child))?;
        Some(role.handle_iq(link, request, payload).await)
    }

    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        let child = set.child();
        let (_, role) = self.fast.iter().find(|(shape, _)| {
            child.name == shape.name && child.namespace(ns::COMPONENT) == shape.namespace
        })?;
        role.read_fast(set)
    }

    async fn handle_presence(&self, link: &ComponentLink, presence: Presence) {
        for role in &self.roles {
            role.handle_presence(link, &presence).await;
        }
    }

    async fn link_up(&self, link: &ComponentLink) {
        for role in &self.roles {
            role.link_up(link).await;
        }
    }
}
