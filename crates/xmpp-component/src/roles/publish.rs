//! The XEP-0357 publish (docs/protocol.md A.2): a user's server asks for a wake-up. This is the hot
//! path: only the node and the secret are taken out of the stanza. The usual shapes are read
//! straight from the wire (`publish_wire`, through the link's fast-path hook); any other comes
//! as an element tree and is reduced to the same two values here.

use std::sync::Arc;

use async_trait::async_trait;
use pushgate_core::app_server::{AppServer, PublishOutcome, PublishRequest};
use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::forms;
use crate::link::handler::{FastAnswer, IqReply};

/// A XEP-0357 publish as an app server reads it (XEP-0357 §5): the node of the first
/// `<publish/>` and the `secret` and `pushModule` fields of the first `<publish-options/>`
/// form. The notification summary and the rest of the item are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushPublish {
    /// The `node` attribute of the publish.
    pub node: Option<String>,
    /// The first value of the `secret` field of the publish options.
    pub secret: Option<String>,
    /// The first value of the `pushModule` field of the publish options (Monal's).
    pub push_module: Option<String>,
}

/// A publish read straight from the wire, with the app server that answers it.
pub(crate) struct FastPublish {
    pub(crate) app_server: Arc<AppServer>,
    pub(crate) publish: PushPublish,
}

#[async_trait]
impl FastAnswer for FastPublish {
    async fn answer(self: Box<Self>, request: &IqHeader) -> Option<IqReply> {
        let Self {
            app_server,
            publish,
        } = *self;
        Some(handle(&app_server, request, publish).await)
    }
}

/// Answers a `<pubsub xmlns='http://jabber.org/protocol/pubsub'/>` request that reached the
/// generic path (a publish in a shape the link does not read itself, or another pubsub request).
pub(crate) async fn handle_pubsub(
    app_server: &AppServer,
    request: &IqHeader,
    is_set: bool,
    pubsub: Element,
) -> IqReply {
    if !is_set {
        // XEP-0060 §7.1.1: a publish is an IQ set.
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    }
    let Some(publish) = read_publish(&pubsub) else {
        // Subscribing, fetching items and the rest of XEP-0060 are not offered.
        return IqReply::error(ErrorType::Cancel, DefinedCondition::FeatureNotImplemented);
    };
    // The publish holds ~25 elements (the summary form included) that the wake-up does not
    // need: freeing them now, on the thread that just built them, is cheaper than after the
    // FCM round trip, and keeps them out of memory while it lasts.
    drop(pubsub);
    handle(app_server, request, publish).await
}

/// What the app server needs of a pubsub element; `None` when it holds no publish.
pub(crate) fn read_publish(pubsub: &Element) -> Option<PushPublish> {
    let publish = pubsub.get_child("publish", ns::PUBSUB)?;
    // XEP-0357 §5: the secret travels in the publish-options form; its FORM_TYPE and the
    // summary form in the item are not needed.
    let form = pubsub
        .get_child("publish-options", ns::PUBSUB)
        .and_then(forms::first_form);
    let field = |name| {
        form.and_then(|form| forms::field_value(form, name))
            .map(Into::into)
    };
    Some(PushPublish {
        node: publish.attr("node").map(str::to_owned),
        secret: field("secret"),
        push_module: field("pushModule"),
    })
}

/// Answers a XEP-0357 publish: looks the node up, checks the secret, wakes the device.
pub(crate) async fn handle(
    app_server: &AppServer,
    request: &IqHeader,
    publish: PushPublish,
) -> IqReply {
    let Some(from) = &request.from else {
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    };
    let outcome = app_server
        .publish(PublishRequest {
            from_domain: from.domain().as_str(),
            from_has_resource: from.resource().is_some(),
            node: publish.node.as_deref(),
            secret: publish.secret.as_deref(),
        })
        .await;
    crate::metrics::publish(outcome_label(&outcome));
    reply(&outcome)
}

/// The table of docs/protocol.md A.2. Only a dead token or a refused request gets a non-`wait`
/// type: ejabberd drops the registration on the first one, Prosody after 16 (B §4.3).
fn reply(outcome: &PublishOutcome) -> IqReply {
    use DefinedCondition as C;
    use ErrorType as T;
    let (type_, condition) = match outcome {
        PublishOutcome::Woken => return IqReply::empty(),
        PublishOutcome::NoSuchNode | PublishOutcome::TokenDead => (T::Cancel, C::ItemNotFound),
        PublishOutcome::Forbidden => (T::Auth, C::Forbidden),
        PublishOutcome::Unavailable => (T::Wait, C::RecipientUnavailable),
        PublishOutcome::InternalError => (T::Wait, C::InternalServerError),
    };
    IqReply::error(type_, condition)
}

fn outcome_label(outcome: &PublishOutcome) -> &'static str {
    match outcome {
        PublishOutcome::Woken => "woken",
        PublishOutcome::NoSuchNode => "no_such_node",
        PublishOutcome::Forbidden => "forbidden",
        PublishOutcome::TokenDead => "token_dead",
        PublishOutcome::Unavailable => "unavailable",
        PublishOutcome::InternalError => "internal_error",
    }
}
