//! The XEP-0357 app server role (p2): publishes wake devices, ad-hoc commands register them.

use std::sync::Arc;

use async_trait::async_trait;
use pushgate_core::app_server::AppServer;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::iq::{IqHeader, IqRequestPayload};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

use super::commands::{self, COMMANDS};
use super::{FastShape, Role, publish, publish_wire, push_status, register_push};
use crate::link::component_link::ComponentLink;
use crate::link::handler::{FastRequest, IqReply};
use crate::stream::fast_stanza::IqSetChild;

/// The app server on one link.
pub(crate) struct AppServerRole {
    /// The link's JID, named in the command list of disco#items.
    component: BareJid,
    app_server: Arc<AppServer>,
}

impl AppServerRole {
    pub(crate) fn new(component: BareJid, app_server: Arc<AppServer>) -> Self {
        Self {
            component,
            app_server,
        }
    }
}

#[async_trait]
impl Role for AppServerRole {
    fn identity(&self) -> Option<Identity> {
        // XEP-0357: an app server is a pubsub service of type `push`.
        Some(Identity::new_anonymous::<_, _, String, String>(
            "pubsub", "push",
        ))
    }

    fn features(&self) -> Vec<String> {
        vec![COMMANDS.to_owned(), ns::PUSH.to_owned()]
    }

    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        commands::node_info(node)
    }

    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        match node {
            Some(COMMANDS) => commands::items(&self.component),
            _ => Vec::new(),
        }
    }

    fn takes(&self, payload: &Element) -> bool {
        // Every command but the provider's own `push-status`.
        payload.is("pubsub", ns::PUBSUB)
            || (payload.is("command", COMMANDS) && !push_status::is_push_status(payload))
    }

    async fn handle_iq(
        &self,
        link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> IqReply {
        let (is_set, payload) = match payload {
            IqRequestPayload::Get(payload) => (false, payload),
            IqRequestPayload::Set(payload) => (true, payload),
        };
        if payload.is("pubsub", ns::PUBSUB) {
            publish::handle_pubsub(&self.app_server, request, is_set, payload).await
        } else {
            register_push::execute(&self.app_server, link.jid(), request, is_set, &payload).await
        }
    }

    fn fast_shape(&self) -> Option<FastShape> {
        // The publish (one per wake-up) is read straight from the wire: the hot path.
        Some(FastShape {
            name: "pubsub",
            namespace: ns::PUBSUB,
        })
    }

    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        let (request, publish) = publish_wire::read(set)?;
        let answer = publish::FastPublish {
            app_server: Arc::clone(&self.app_server),
            publish,
        };
        Some(FastRequest {
            header: request.into(),
            answer: Box::new(answer),
        })
    }
}
