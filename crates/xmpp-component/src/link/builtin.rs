//! IQs the link answers itself: disco#info and disco#items (XEP-0030) and ping (XEP-0199).

use std::collections::BTreeSet;

use xmpp_parsers::disco::{DiscoInfoResult, DiscoItemsResult};
use xmpp_parsers::iq::IqRequestPayload;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use crate::link::handler::{IqReply, StanzaHandler};

/// The answer to a built-in request, or `None` when the handler must decide.
pub(crate) fn answer(handler: &dyn StanzaHandler, payload: &IqRequestPayload) -> Option<IqReply> {
    let IqRequestPayload::Get(query) = payload else {
        return None;
    };
    if query.is("ping", ns::PING) {
        // XEP-0199 §4: an empty result.
        return Some(IqReply::empty());
    }
    if query.is("query", ns::DISCO_INFO) {
        return Some(disco_info(handler, query.attr("node")));
    }
    if query.is("query", ns::DISCO_ITEMS) {
        return Some(disco_items(handler, query.attr("node")));
    }
    None
}

fn disco_info(handler: &dyn StanzaHandler, node: Option<&str>) -> IqReply {
    if let Some(node) = node {
        return match handler.node_info(node) {
            Some(info) => IqReply::result(info),
            // XEP-0030 §3.2: an unknown node.
            None => IqReply::error(ErrorType::Cancel, DefinedCondition::ItemNotFound),
        };
    }
    let mut features: BTreeSet<String> = [ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING]
        .into_iter()
        .map(str::to_owned)
        .collect();
    features.extend(handler.features());
    IqReply::result(DiscoInfoResult {
        node: None,
        identities: handler.identities(),
        features,
        extensions: Vec::new(),
    })
}

fn disco_items(handler: &dyn StanzaHandler, node: Option<&str>) -> IqReply {
    let result = DiscoItemsResult {
        node: node.map(str::to_owned),
        items: handler.items(node),
        rsm: None,
    };
    IqReply::result(Element::from(result))
}
