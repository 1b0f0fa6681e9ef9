//! The token-in-node role (Monal's app server, fpush's protocol): a publish whose node is the
//! device token and whose `pushModule` option names the app. No registration commands.

use std::sync::Arc;

use async_trait::async_trait;
use pushgate_core::push_module::{PushModules, TokenPublish, TokenPublishOutcome};
use xmpp_parsers::disco::Identity;
use xmpp_parsers::iq::{IqHeader, IqRequestPayload};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::{FastShape, PushPublish, Role, publish, publish_wire};
use crate::link::component_link::ComponentLink;
use crate::link::handler::{FastAnswer, FastRequest, IqReply};
use crate::stream::fast_stanza::IqSetChild;

/// The token-in-node service on one link.
pub(crate) struct PushModuleRole {
    modules: Arc<PushModules>,
}

impl PushModuleRole {
    pub(crate) fn new(modules: Arc<PushModules>) -> Self {
        Self { modules }
    }
}

#[async_trait]
impl Role for PushModuleRole {
    fn identity(&self) -> Option<Identity> {
        Some(Identity::new_anonymous::<_, _, String, String>(
            "pubsub", "push",
        ))
    }

    fn features(&self) -> Vec<String> {
        vec![ns::PUSH.to_owned()]
    }

    fn takes(&self, payload: &Element) -> bool {
        payload.is("pubsub", ns::PUBSUB)
    }

    async fn handle_iq(
        &self,
        _link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> IqReply {
        let IqRequestPayload::Set(pubsub) = payload else {
            // XEP-0060 §7.1.1: a publish is an IQ set.
            return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
        };
        let Some(publish) = publish::read_publish(&pubsub) else {
            return IqReply::error(ErrorType::Cancel, DefinedCondition::FeatureNotImplemented);
        };
        drop(pubsub);
        handle(&self.modules, request, publish).await
    }

    fn fast_shape(&self) -> Option<FastShape> {
        Some(FastShape {
            name: "pubsub",
            namespace: ns::PUBSUB,
        })
    }

    fn read_fast(&self, set: IqSetChild<'_, '_>) -> Option<FastRequest> {
        let (request, publish) = publish_wire::read(set)?;
        let answer = FastTokenPublish {
            modules: Arc::clone(&self.modules),
            publish,
        };
        Some(FastRequest {
            header: request.into(),
            answer: Box::new(answer),
        })
    }
}

/// A publish read straight from the wire, with the service that answers it.
struct FastTokenPublish {
    modules: Arc<PushModules>,
    publish: PushPublish,
}

#[async_trait]
impl FastAnswer for FastTokenPublish {
    async fn answer(self: Box<Self>, request: &IqHeader) -> Option<IqReply> {
        let Self { modules, publish } = *self;
        Some(handle(&modules, request, publish).await)
    }
}

/// Answers a token-in-node publish. A `secret` is taken and ignored, as fpush's clients may
/// send one.
async fn handle(modules: &PushModules, request: &IqHeader, publish: PushPublish) -> IqReply {
    let Some(from) = &request.from else {
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    };
    let outcome = modules
        .publish(TokenPublish {
            from_has_resource: from.resource().is_some(),
            node: publish.node.as_deref(),
            module: publish.push_module.as_deref(),
        })
        .await;
    crate::metrics::publish(outcome_label(outcome));
    reply(outcome)
}

/// Only a dead token or a module that does not exist gets `cancel`: ejabberd drops the
/// registration on the first one, Prosody after several.
fn reply(outcome: TokenPublishOutcome) -> IqReply {
    use DefinedCondition as C;
    use ErrorType as T;
    use TokenPublishOutcome as O;
    let (type_, condition) = match outcome {
        O::Woken | O::Coalesced => return IqReply::empty(),
        O::BadNode => (T::Modify, C::BadRequest),
        O::UnknownModule | O::TokenDead => (T::Cancel, C::ItemNotFound),
        O::Forbidden => (T::Auth, C::Forbidden),
        O::Unavailable => (T::Wait, C::RecipientUnavailable),
    };
    IqReply::error(type_, condition)
}

fn outcome_label(outcome: TokenPublishOutcome) -> &'static str {
    use TokenPublishOutcome as O;
    match outcome {
        O::Woken => "woken",
        O::Coalesced => "coalesced",
        O::BadNode => "bad_node",
        O::UnknownModule => "unknown_module",
        O::Forbidden => "forbidden",
        O::TokenDead => "token_dead",
        O::Unavailable => "unavailable",
    }
}
