//! The stanzas of the `wakeup` benchmark: what Conversations and Prosody send, and reading
//! pushgate's answers.

use bytes::Bytes;
use xmpp_parsers::minidom::Element;

use super::scenario::Service;
use super::{COMPONENT, DOMAIN};

/// Conversations' `register-push-fcm` (docs/protocol.md B.3.1) as the server routes it to the
/// component, from the user's full JID; for APNs, p2's `register-push-apns` with a 32-byte hex
/// device token.
pub(super) fn register_stanza(device: u64, service: Service) -> Bytes {
    // Distinct 16-hex-digit Android ids, like Settings.Secure.ANDROID_ID.
    let android_id = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(device + 1);
    let (node, token) = match service {
        Service::Fcm => ("register-push-fcm", format!("fcm-token-{device:06}-bench")),
        Service::Apns => ("register-push-apns", format!("{android_id:016x}").repeat(4)),
    };
    Bytes::from(format!(
        "<iq type='set' id='reg{device}' from='user{device}@{DOMAIN}/Conversations.bench' to='{COMPONENT}'>\
<command xmlns='http://jabber.org/protocol/commands' node='{node}' action='execute'>\
<x xmlns='jabber:x:data' type='submit'>\
<field var='token'><value>{token}</value></field>\
<field var='android-id'><value>{android_id:016x}</value></field>\
</x></command></iq>"
    ))
}

/// Prosody 0.12's publish (mod_cloud_notify, as captured), with this run's id, node and secret.
pub(super) fn publish_stanza(number: u64, node: &str, secret: &str) -> Bytes {
    Bytes::from(format!(
        "<iq id='p{number}' type='set' from='{DOMAIN}' to='{COMPONENT}'>\
<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item>\
<notification xmlns='urn:xmpp:push:0'><x type='form' xmlns='jabber:x:data'>\
<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field>\
<field var='message-count' type='text-single'><value>1</value></field>\
<field var='pending-subscription-count' type='text-single'/>\
<field var='last-message-sender' type='jid-single'/>\
<field var='last-message-body' type='text-single'><value>New Message!</value></field>\
</x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'>\
<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
<field var='secret'><value>{secret}</value></field></x></publish-options></pubsub></iq>",
        node = escape(node),
        secret = escape(secret),
    ))
}

fn escape(text: &str) -> String {
    pushgate_testkit::fake_xmpp_server::escape(text)
}

/// The value of field `var` in the command's form of a registration answer.
pub(super) fn form_value(iq: &Element, var: &str) -> Option<String> {
    let command = iq.children().find(|child| child.name() == "command")?;
    let form = command.children().find(|child| child.name() == "x")?;
    form.children()
        .filter(|field| field.name() == "field" && field.attr("var") == Some(var))
        .find_map(|field| field.children().find(|value| value.name() == "value"))
        .map(Element::text)
        .filter(|value| !value.is_empty())
}

/// The defined condition of an error answer (RFC 6120 §8.3.3), with its type.
pub(super) fn error_condition(iq: &Element) -> String {
    let Some(error) = iq.children().find(|child| child.name() == "error") else {
        return format!("type={}", iq.attr("type").unwrap_or("none"));
    };
    let condition = error
        .children()
        .find(|child| child.name() != "text")
        .map_or("no condition", Element::name);
    format!("{condition} ({})", error.attr("type").unwrap_or("no type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stanzas_parse_and_carry_their_values() {
        let with_ns = |bytes: Bytes| -> Element {
            let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
            text.replacen("<iq ", "<iq xmlns='jabber:component:accept' ", 1)
                .parse()
                .expect("well-formed")
        };
        let publish = with_ns(publish_stanza(
            7,
            "eKxTS5n3bOe0",
            "KK4+H5WMfpRG/2zCbuKq6wpX",
        ));
        assert_eq!(publish.attr("id"), Some("p7"));
        assert_eq!(publish.attr("from"), Some(DOMAIN));
        let register = with_ns(register_stanza(3, Service::Fcm));
        assert_eq!(
            register.attr("from"),
            Some("user3@example.test/Conversations.bench")
        );
        let apns = with_ns(register_stanza(3, Service::Apns));
        let token = form_value(&apns, "token").expect("a token");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    }

    #[test]
    fn answers_are_read_leniently() {
        let answer: Element = "<iq xmlns='jabber:component:accept' type='result' id='reg1'>\
<command xmlns='http://jabber.org/protocol/commands' status='completed'><x xmlns='jabber:x:data' type='form'>\
<field var='jid'><value>push.example.test</value></field>\
<field var='node'><value>N</value></field><field var='secret'><value>S</value></field></x></command></iq>"
            .parse()
            .expect("well-formed");
        assert_eq!(form_value(&answer, "node").as_deref(), Some("N"));
        assert_eq!(form_value(&answer, "secret").as_deref(), Some("S"));
        let error: Element =
            "<iq xmlns='jabber:component:accept' type='error' id='p1'><error type='wait'>\
<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                .parse()
                .expect("well-formed");
        assert_eq!(error_condition(&error), "recipient-unavailable (wait)");
    }
}
