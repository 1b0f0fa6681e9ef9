//! Stanzas of the app server role: Conversations' registration as specified, and the
//! publishes captured from Prosody 0.12.3 and ejabberd 23.01 (`captures/`).

use pushgate_xmpp::xmpp_parsers::minidom::Element;

use super::JID;
use super::roles::{COMPONENT_NS, RolesHarness};

pub const COMMANDS_NS: &str = "http://jabber.org/protocol/commands";
pub const DATA_NS: &str = "jabber:x:data";
pub const ALICE: &str = "alice@example.test/Conversations.x1Yz";

/// Conversations' registration (docs/protocol.md B §3.1), as the user's server forwards it.
pub fn conversations_register(id: &str, from: &str, token: &str, android_id: &str) -> String {
    format!(
        "<iq type='set' to='{JID}' from='{from}' id='{id}'>\
         <command xmlns='http://jabber.org/protocol/commands' node='register-push-fcm' action='execute'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='token'><value>{token}</value></field>\
         <field var='android-id'><value>{android_id}</value></field>\
         </x></command></iq>"
    )
}

/// A command IQ with any node, action, IQ type and inner form XML.
pub fn command(id: &str, iq_type: &str, node: &str, action: Option<&str>, form: &str) -> String {
    let action = action.map_or(String::new(), |a| format!(" action='{a}'"));
    format!(
        "<iq type='{iq_type}' to='{JID}' from='{ALICE}' id='{id}'>\
         <command xmlns='{COMMANDS_NS}' node='{node}'{action}>{form}</command></iq>"
    )
}

pub fn form(fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(var, value)| format!("<field var='{var}'><value>{value}</value></field>"))
        .collect();
    format!("<x xmlns='{DATA_NS}' type='submit'>{fields}</x>")
}

/// Checks the whole shape of p2's answer (docs/protocol.md B §1.2) and returns (node, secret).
pub fn registration_of(reply: &Element, id: &str, to: &str, node: &str) -> (String, String) {
    let text = String::from(reply);
    assert!(reply.is("iq", COMPONENT_NS), "{text}");
    assert_eq!(reply.attr("type"), Some("result"), "{text}");
    assert_eq!(reply.attr("id"), Some(id));
    // Conversations matches the answer's `from` against the request's `to`.
    assert_eq!(reply.attr("from"), Some(JID));
    assert_eq!(reply.attr("to"), Some(to));
    let command = reply.get_child("command", COMMANDS_NS).expect(&text);
    assert_eq!(command.attr("node"), Some(node));
    assert_eq!(command.attr("status"), Some("completed"));
    assert!(!command.attr("sessionid").unwrap_or_default().is_empty());
    let x = command.get_child("x", DATA_NS).expect(&text);
    assert_eq!(x.attr("type"), Some("form"));
    let fields: Vec<(&str, &str, String)> = x
        .children()
        .map(|field| {
            assert!(field.is("field", DATA_NS));
            let value = field.get_child("value", DATA_NS).expect(&text).text();
            (
                field.attr("var").unwrap(),
                field.attr("type").unwrap(),
                value,
            )
        })
        .collect();
    assert_eq!(fields.len(), 3, "{text}");
    assert_eq!(fields[0], ("jid", "text-single", JID.to_owned()));
    assert_eq!((fields[1].0, fields[1].1), ("node", "text-single"));
    assert_eq!((fields[2].0, fields[2].1), ("secret", "text-single"));
    let (node, secret) = (fields[1].2.clone(), fields[2].2.clone());
    assert_eq!(node.len(), 12, "{node}");
    assert_eq!(secret.len(), 24, "{secret}");
    (node, secret)
}

pub async fn register(
    h: &mut RolesHarness,
    from: &str,
    token: &str,
    android_id: &str,
) -> (String, String) {
    let reply = h
        .exchange(&conversations_register("r", from, token, android_id))
        .await;
    registration_of(&reply, "r", from, "register-push-fcm")
}

/// Prosody 0.12.3's publish, captured (`prosody-publish.xml`), with the registered node and
/// secret put in.
pub fn prosody_publish(node: &str, secret: &str, from: &str) -> String {
    "<iq id='41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9' type='set' from='example.test' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'><x type='form' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='message-count' type='text-single'><value>1</value></field><field var='pending-subscription-count' type='text-single'/><field var='last-message-sender' type='jid-single'/><field var='last-message-body' type='text-single'><value>New Message!</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>"
        .replace("testnode", node)
        .replace("s3cr3t-device-token", secret)
        .replace("from='example.test'", &format!("from='{from}'"))
}

/// ejabberd 23.01's publish without a summary (`ejabberd-publish.xml`).
pub fn ejabberd_publish(node: &str, secret: &str) -> String {
    "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304241616-4070978284379159298-tGWXfBKzfdWSm9di9q6Ru1Wy4Ns=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'/></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>"
        .replace("testnode", node)
        .replace("s3cr3t-device-token", secret)
}

/// ejabberd 23.01's publish with a submit summary (`ejabberd-publish-summary.xml`).
pub fn ejabberd_publish_summary(node: &str, secret: &str) -> String {
    "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304273846-995200286761437116-kdsE8Lz/Hj+FEMyKC4t8hbAytaE=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='hibnode'><item><notification xmlns='urn:xmpp:push:0'><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='last-message-sender' type='jid-single' label='The sender of the last received message'><value>bob@example.test/16182854295944541736386</value></field><field var='last-message-body' type='text-single' label='The body text of the last received message'><value>New message</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>tok2</value></field></x></publish-options></pubsub></iq>"
        .replace("hibnode", node)
        .replace("tok2", secret)
}
