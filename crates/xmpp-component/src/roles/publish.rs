//! The XEP-0357 publish (PROTOCOL.md A.2): a user's server asks for a wake-up. This is the hot
//! path: only the node and the secret are taken out of the stanza, and the rest of its tree is
//! freed before the wake-up is awaited.

use pushgate_core::app_server::{AppServer, PublishOutcome, PublishRequest};
use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::forms;
use crate::handler::IqReply;

/// Answers a `<pubsub xmlns='http://jabber.org/protocol/pubsub'/>` request.
pub(crate) async fn handle(
    app_server: &AppServer,
    request: &IqHeader,
    is_set: bool,
    pubsub: Element,
) -> IqReply {
    if !is_set {
        // XEP-0060 §7.1.1: a publish is an IQ set.
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    }
    let Some(publish) = pubsub.get_child("publish", ns::PUBSUB) else {
        // Subscribing, fetching items and the rest of XEP-0060 are not offered.
        return IqReply::error(ErrorType::Cancel, DefinedCondition::FeatureNotImplemented);
    };
    let Some(from) = &request.from else {
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    };
    // XEP-0357 §5: the secret travels in the publish-options form; its FORM_TYPE and the
    // summary form in the item are not needed.
    let secret: Option<String> = pubsub
        .get_child("publish-options", ns::PUBSUB)
        .and_then(forms::first_form)
        .and_then(|form| forms::field_value(form, "secret"))
        .map(Into::into);
    let node: Option<String> = publish.attr("node").map(str::to_owned);
    // The publish holds ~25 elements (the summary form included) that the wake-up does not
    // need: freeing them now, on the thread that just built them, is cheaper than after the
    // FCM round trip, and keeps them out of memory while it lasts.
    drop(pubsub);
    let outcome = app_server
        .publish(PublishRequest {
            from_domain: from.domain().as_str(),
            from_has_resource: from.resource().is_some(),
            node: node.as_deref(),
            secret: secret.as_deref(),
        })
        .await;
    metrics::counter!("pushgate_publish_total", "outcome" => outcome_label(&outcome)).increment(1);
    reply(&outcome)
}

/// The table of PROTOCOL.md A.2. Only a dead token or a refused request gets a non-`wait`
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
