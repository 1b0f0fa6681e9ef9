//! Building and reading `jabber:client` stanzas as [`Element`]s (minidom's).
//!
//! The workspace builds `xmpp-parsers` with its `component` feature, which puts its stanza
//! types in `jabber:component:accept`; a client stream needs `jabber:client` (RFC 6120 §4.8.3),
//! so the test client works on plain elements.

use tokio_xmpp::minidom::rxml::{Namespace, NcName};
pub use tokio_xmpp::minidom::{Element, Error as XmlError};

/// The default namespace of a client stream (RFC 6120 §4.8.3).
pub const NS_CLIENT: &str = "jabber:client";
/// XEP-0199 XMPP Ping.
pub const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0030 disco#info.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// RFC 6120 §8.3.3 stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Parses one element from text; the root needs its own `xmlns` (e.g. `xmlns='jabber:client'`).
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    xml.parse()
}

/// Sets (or replaces) an attribute without a namespace. Names that are not valid XML names
/// are ignored (all callers in this crate pass constants).
pub fn set_attr(element: &mut Element, name: &str, value: &str) {
    if let Ok(name) = NcName::try_from(name) {
        element
            .attrs_mut()
            .insert(Namespace::NONE, name, value.to_owned());
    }
}

/// An element with attributes set, in `namespace`.
pub fn element(name: &str, namespace: &str, attrs: &[(&str, &str)]) -> Element {
    let mut element = Element::bare(name, namespace);
    for (attr, value) in attrs {
        set_attr(&mut element, attr, value);
    }
    element
}

/// `<iq type='{kind}' to='{to}'>` around `payload` (the id is set when it is sent).
pub fn iq(kind: &str, to: &str, payload: Element) -> Element {
    let mut iq = element("iq", NS_CLIENT, &[("type", kind), ("to", to)]);
    iq.append_child(payload);
    iq
}

/// A XEP-0199 ping IQ to `to`.
pub fn ping(to: &str) -> Element {
    iq("get", to, Element::bare("ping", NS_PING))
}

/// A XEP-0030 disco#info query IQ to `to`.
pub fn disco_info(to: &str) -> Element {
    iq("get", to, Element::bare("query", NS_DISCO_INFO))
}

/// A chat message with a body.
pub fn chat_message(to: &str, body: &str) -> Element {
    let mut message = element("message", NS_CLIENT, &[("type", "chat"), ("to", to)]);
    let mut body_element = Element::bare("body", NS_CLIENT);
    body_element.append_text(body);
    message.append_child(body_element);
    message
}

/// Initial available presence (RFC 6121 §4.2).
pub fn available_presence() -> Element {
    Element::bare("presence", NS_CLIENT)
}

/// The empty result to an IQ get/set received from `request` (RFC 6120 §8.2.3).
pub fn iq_result_to(request: &Element) -> Element {
    let mut result = element("iq", NS_CLIENT, &[("type", "result")]);
    if let Some(id) = request.attr("id") {
        set_attr(&mut result, "id", id);
    }
    if let Some(from) = request.attr("from") {
        set_attr(&mut result, "to", from);
    }
    result
}

/// The `type` attribute of a stanza, or "" when missing.
pub fn stanza_type(stanza: &Element) -> &str {
    stanza.attr("type").unwrap_or("")
}

/// The defined condition of an error stanza (`service-unavailable`, …), if it carries one
/// (RFC 6120 §8.3).
pub fn error_condition(stanza: &Element) -> Option<String> {
    let error = stanza.get_child("error", stanza.ns().as_str())?;
    error
        .children()
        .find(|child| child.ns() == NS_STANZAS && child.name() != "text")
        .map(|child| child.name().to_owned())
}

/// The `var`s of the `<feature/>`s in a disco#info result.
pub fn disco_features(result: &Element) -> Vec<String> {
    result
        .get_child("query", NS_DISCO_INFO)
        .map(|query| {
            query
                .children()
                .filter(|child| child.is("feature", NS_DISCO_INFO))
                .filter_map(|feature| feature.attr("var").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_condition_is_read_from_an_error_iq() {
        let stanza = parse(
            "<iq xmlns='jabber:client' type='error' id='a'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>",
        )
        .unwrap();
        assert_eq!(
            error_condition(&stanza).as_deref(),
            Some("service-unavailable")
        );
        assert_eq!(stanza_type(&stanza), "error");
    }

    #[test]
    fn built_iq_carries_namespace_and_attributes() {
        let mut iq = ping("example.test");
        set_attr(&mut iq, "id", "x1");
        let mut text = Vec::new();
        iq.write_to(&mut text).unwrap();
        let back = parse(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(back.ns(), NS_CLIENT);
        assert_eq!(back.attr("to"), Some("example.test"));
        assert_eq!(back.attr("id"), Some("x1"));
        assert!(back.has_child("ping", NS_PING));
    }

    #[test]
    fn disco_features_are_listed() {
        let result = parse(
            "<iq xmlns='jabber:client' type='result'><query \
             xmlns='http://jabber.org/protocol/disco#info'><identity category='pubsub' \
             type='push'/><feature var='urn:xmpp:push:0'/><feature var='urn:xmpp:ping'/>\
             </query></iq>",
        )
        .unwrap();
        assert_eq!(
            disco_features(&result),
            ["urn:xmpp:push:0", "urn:xmpp:ping"]
        );
    }
}
