//! The app server role (p2) on the wire: XEP-0050 registration commands and XEP-0357
//! publishes, stanza in and stanza out through a real component link.

#![allow(clippy::unwrap_used)]

mod support;

use pushgate_core::{DeviceHash, WakeOutcome};
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use support::JID;
use support::roles::*;

const COMMANDS_NS: &str = "http://jabber.org/protocol/commands";
const DATA_NS: &str = "jabber:x:data";
const ALICE: &str = "alice@example.test/Conversations.x1Yz";

/// Conversations' registration (PROTOCOL.md B §3.1), as the user's server forwards it.
fn conversations_register(id: &str, from: &str, token: &str, android_id: &str) -> String {
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
fn command(id: &str, iq_type: &str, node: &str, action: Option<&str>, form: &str) -> String {
    let action = action.map_or(String::new(), |a| format!(" action='{a}'"));
    format!(
        "<iq type='{iq_type}' to='{JID}' from='{ALICE}' id='{id}'>\
         <command xmlns='{COMMANDS_NS}' node='{node}'{action}>{form}</command></iq>"
    )
}

fn form(fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(var, value)| format!("<field var='{var}'><value>{value}</value></field>"))
        .collect();
    format!("<x xmlns='{DATA_NS}' type='submit'>{fields}</x>")
}

/// Checks the whole shape of p2's answer (PROTOCOL.md B §1.2) and returns (node, secret).
fn registration_of(reply: &Element, id: &str, to: &str, node: &str) -> (String, String) {
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

async fn register(
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
fn prosody_publish(node: &str, secret: &str, from: &str) -> String {
    "<iq id='41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9' type='set' from='example.test' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'><x type='form' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='message-count' type='text-single'><value>1</value></field><field var='pending-subscription-count' type='text-single'/><field var='last-message-sender' type='jid-single'/><field var='last-message-body' type='text-single'><value>New Message!</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>"
        .replace("testnode", node)
        .replace("s3cr3t-device-token", secret)
        .replace("from='example.test'", &format!("from='{from}'"))
}

/// ejabberd 23.01's publish without a summary (`ejabberd-publish.xml`).
fn ejabberd_publish(node: &str, secret: &str) -> String {
    "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304241616-4070978284379159298-tGWXfBKzfdWSm9di9q6Ru1Wy4Ns=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'/></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>"
        .replace("testnode", node)
        .replace("s3cr3t-device-token", secret)
}

/// ejabberd 23.01's publish with a submit summary (`ejabberd-publish-summary.xml`).
fn ejabberd_publish_summary(node: &str, secret: &str) -> String {
    "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304273846-995200286761437116-kdsE8Lz/Hj+FEMyKC4t8hbAytaE=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='hibnode'><item><notification xmlns='urn:xmpp:push:0'><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='last-message-sender' type='jid-single' label='The sender of the last received message'><value>bob@example.test/16182854295944541736386</value></field><field var='last-message-body' type='text-single' label='The body text of the last received message'><value>New message</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>tok2</value></field></x></publish-options></pubsub></iq>"
        .replace("hibnode", node)
        .replace("tok2", secret)
}

#[tokio::test]
async fn conversations_registration_gets_p2s_answer_and_the_same_node_again() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let (node, secret) = register(&mut h, ALICE, "FCM-TOKEN-1", "aa11bb22cc33dd44").await;
    // Conversations registers on every bind: same device, same node and secret, new token.
    let again = register(&mut h, ALICE, "FCM-TOKEN-2", "aa11bb22cc33dd44").await;
    assert_eq!(again, (node.clone(), secret.clone()));
    let registrations = h.store.registrations();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].token, "FCM-TOKEN-2");
    assert_eq!(registrations[0].domain, "example.test");
    // Another resource of the same account is the same device (the hash uses the bare JID).
    let other = register(
        &mut h,
        "alice@example.test/tablet",
        "FCM-TOKEN-3",
        "aa11bb22cc33dd44",
    )
    .await;
    assert_eq!(other, (node, secret));
    // Another device gets its own node.
    let new = register(&mut h, ALICE, "FCM-TOKEN-4", "ffff").await;
    assert_ne!(new.0, other.0);
    h.stop().await;
}

#[tokio::test]
async fn the_device_hash_is_p2s_and_a_publish_wakes_with_it() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let from = "xiaomia1@jabber.de/Conversations.AbCd";
    let (node, secret) = register(&mut h, from, "tok-x", "92afd7a91cdba9a0").await;
    let expected = "ec164939a8485ee6b7f7871071a11c7bb18aead5";
    assert_eq!(h.store.registrations()[0].device.as_str(), expected);
    let reply = h
        .exchange(&prosody_publish(&node, &secret, "jabber.de"))
        .await;
    assert_empty_result(
        &reply,
        "41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9",
    );
    assert_eq!(reply.attr("to"), Some("jabber.de"));
    assert_eq!(
        h.waker.calls(),
        vec![("tok-x".to_owned(), expected.to_owned())]
    );
    h.stop().await;
}

#[tokio::test]
async fn device_id_is_preferred_and_case_and_action_are_lenient() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let fields = form(&[("token", "T"), ("android-id", "A1"), ("device-id", "D1")]);
    let reply = h
        .exchange(&command("c1", "set", "REGISTER-Push-FCM", None, &fields))
        .await;
    // The node comes back as the client wrote it; a missing action means execute.
    registration_of(&reply, "c1", ALICE, "REGISTER-Push-FCM");
    let device = &h.store.registrations()[0].device;
    assert_eq!(device, &DeviceHash::compute("alice@example.test", "D1"));
    // The APNs commands exist too.
    let reply = h
        .exchange(&command(
            "c2",
            "set",
            "register-push-apns",
            Some("execute"),
            &fields,
        ))
        .await;
    registration_of(&reply, "c2", ALICE, "register-push-apns");
    h.stop().await;
}

#[tokio::test]
async fn unregister_completes_once_then_is_item_not_found() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    register(&mut h, ALICE, "T", "A1").await;
    let unregister = command(
        "u1",
        "set",
        "unregister-push-fcm",
        Some("execute"),
        &form(&[("android-id", "A1")]),
    );
    let reply = h.exchange(&unregister).await;
    let text = String::from(&reply);
    assert_eq!(reply.attr("type"), Some("result"), "{text}");
    let done = reply.get_child("command", COMMANDS_NS).expect(&text);
    assert_eq!(done.attr("node"), Some("unregister-push-fcm"));
    assert_eq!(done.attr("status"), Some("completed"));
    assert!(done.attr("sessionid").is_some());
    assert_eq!(done.children().count(), 0, "no form: {text}");
    assert!(h.store.registrations().is_empty());
    let reply = h.exchange(&unregister.replace("u1", "u2")).await;
    assert_eq!(
        stanza_error(&reply),
        ("item-not-found".into(), "cancel".into())
    );
    h.stop().await;
}

#[tokio::test]
async fn every_bad_command_gets_its_error() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let good = form(&[("token", "T"), ("android-id", "A1")]);
    let long_token = "t".repeat(4097);
    let too_long = form(&[("token", &long_token), ("android-id", "A1")]);
    let rows: Vec<(&str, String, (&str, &str))> = vec![
        (
            "no form",
            command("b1", "set", "register-push-fcm", Some("execute"), ""),
            ("bad-request", "modify"),
        ),
        (
            "no token",
            command(
                "b2",
                "set",
                "register-push-fcm",
                Some("execute"),
                &form(&[("android-id", "A1")]),
            ),
            ("bad-request", "modify"),
        ),
        (
            "blank token",
            command(
                "b3",
                "set",
                "register-push-fcm",
                None,
                &form(&[("token", "  "), ("android-id", "A1")]),
            ),
            ("bad-request", "modify"),
        ),
        (
            "no android-id",
            command(
                "b4",
                "set",
                "register-push-fcm",
                Some("execute"),
                &form(&[("token", "T")]),
            ),
            ("bad-request", "modify"),
        ),
        (
            "token too long",
            command("b5", "set", "register-push-fcm", Some("execute"), &too_long),
            ("bad-request", "modify"),
        ),
        (
            "muc",
            command(
                "b6",
                "set",
                "register-push-fcm",
                Some("execute"),
                &form(&[
                    ("token", "T"),
                    ("android-id", "A1"),
                    ("muc", "room@muc.example.test"),
                ]),
            ),
            ("feature-not-implemented", "cancel"),
        ),
        (
            "unknown node",
            command("b7", "set", "register-push-foo", Some("execute"), &good),
            ("item-not-found", "cancel"),
        ),
        (
            "get",
            command("b8", "get", "register-push-fcm", Some("execute"), &good),
            ("bad-request", "modify"),
        ),
        (
            "cancel",
            command("b9", "set", "register-push-fcm", Some("cancel"), &good),
            ("bad-request", "modify"),
        ),
        (
            "prev",
            command("b10", "set", "register-push-fcm", Some("prev"), &good),
            ("bad-request", "modify"),
        ),
        (
            "unregister without device",
            command(
                "b11",
                "set",
                "unregister-push-fcm",
                Some("execute"),
                &form(&[]),
            ),
            ("bad-request", "modify"),
        ),
    ];
    for (what, stanza, (condition, type_)) in rows {
        let reply = h.exchange(&stanza).await;
        assert_eq!(
            stanza_error(&reply),
            (condition.to_owned(), type_.to_owned()),
            "{what}"
        );
        assert_eq!(reply.attr("from"), Some(JID), "{what}");
    }
    assert!(h.store.registrations().is_empty());
    // Our own failure is a `wait`: ejabberd would drop the user's push registration on a cancel.
    h.store.set_unavailable(true);
    let reply = h
        .exchange(&command(
            "b12",
            "set",
            "register-push-fcm",
            Some("execute"),
            &good,
        ))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("internal-server-error".into(), "wait".into())
    );
    h.stop().await;
}

#[tokio::test]
async fn prosody_and_ejabberd_publishes_wake_the_phone() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let (node, secret) = register(&mut h, ALICE, "FCM-T", "A1").await;
    let device = DeviceHash::compute("alice@example.test", "A1");
    let captures = [
        (
            prosody_publish(&node, &secret, "example.test"),
            "41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9",
        ),
        (
            ejabberd_publish(&node, &secret),
            "rr-1795304241616-4070978284379159298-tGWXfBKzfdWSm9di9q6Ru1Wy4Ns=-32189140",
        ),
        (
            ejabberd_publish_summary(&node, &secret),
            "rr-1795304273846-995200286761437116-kdsE8Lz/Hj+FEMyKC4t8hbAytaE=-32189140",
        ),
    ];
    for (stanza, id) in &captures {
        let reply = h.exchange(stanza).await;
        assert_empty_result(&reply, id);
        assert_eq!(reply.attr("to"), Some("example.test"));
    }
    let calls = h.waker.calls();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|call| *call == ("FCM-T".to_owned(), device.as_str().to_owned()))
    );
    // A user's bare JID may publish too: only its domain is looked up.
    let reply = h
        .exchange(&prosody_publish(&node, &secret, "bob@example.test"))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    h.stop().await;
}

#[tokio::test]
async fn every_row_of_the_publish_table() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let (node, secret) = register(&mut h, ALICE, "FCM-T", "A1").await;
    let publish = |from: &str| prosody_publish(&node, &secret, from);
    let no_options = {
        let full = publish("example.test");
        let start = full.find("<publish-options>").unwrap();
        let end = full.find("</publish-options>").unwrap() + "</publish-options>".len();
        format!("{}{}", &full[..start], &full[end..])
    };
    let rows: Vec<(&str, String, (&str, &str))> = vec![
        (
            "resource in from",
            publish("example.test/res"),
            ("forbidden", "auth"),
        ),
        (
            "wrong secret",
            prosody_publish(&node, "AAAAAAAAAAAAAAAAAAAAAAAA", "example.test"),
            ("forbidden", "auth"),
        ),
        ("no publish-options", no_options, ("forbidden", "auth")),
        (
            "unknown node",
            prosody_publish("nonode", &secret, "example.test"),
            ("item-not-found", "cancel"),
        ),
        (
            "other domain",
            publish("other.test"),
            ("item-not-found", "cancel"),
        ),
        (
            "get",
            publish("example.test").replace("type='set'", "type='get'"),
            ("bad-request", "modify"),
        ),
    ];
    for (what, stanza, (condition, type_)) in rows {
        let reply = h.exchange(&stanza).await;
        assert_eq!(
            stanza_error(&reply),
            (condition.to_owned(), type_.to_owned()),
            "{what}"
        );
    }
    assert!(h.waker.calls().is_empty(), "no push for a refused publish");

    let subscribe = format!(
        "<iq type='set' id='s1' from='example.test' to='{JID}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <subscribe node='{node}' jid='example.test'/></pubsub></iq>"
    );
    let reply = h.exchange(&subscribe).await;
    assert_eq!(
        stanza_error(&reply),
        ("feature-not-implemented".into(), "cancel".into())
    );

    // Transient push-service trouble and a refused message: `wait`, the registration survives.
    for outcome in [
        WakeOutcome::Transient("503".into()),
        WakeOutcome::Rejected("INVALID_ARGUMENT".into()),
    ] {
        h.waker.answer(outcome);
        let reply = h.exchange(&publish("example.test")).await;
        assert_eq!(
            stanza_error(&reply),
            ("recipient-unavailable".into(), "wait".into())
        );
    }
    // The database is down: `wait` as well.
    h.store.set_unavailable(true);
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("internal-server-error".into(), "wait".into())
    );
    h.store.set_unavailable(false);
    // FCM UNREGISTERED: item-not-found, the registration is marked dead, and the next publish
    // is answered without asking FCM again.
    h.waker.answer(WakeOutcome::TokenDead);
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("item-not-found".into(), "cancel".into())
    );
    assert!(h.store.registrations()[0].dead_since.is_some());
    let asked = h.waker.calls().len();
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("item-not-found".into(), "cancel".into())
    );
    assert_eq!(h.waker.calls().len(), asked);
    h.stop().await;
}

#[tokio::test]
async fn disco_announces_the_app_server_and_its_commands() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let info = h
        .exchange(&format!(
            "<iq type='get' id='d1' from='{ALICE}' to='{JID}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (identity.attr("category"), identity.attr("type")),
        (Some("pubsub"), Some("push"))
    );
    let features: Vec<&str> = query.children().filter_map(|c| c.attr("var")).collect();
    for feature in [
        COMMANDS_NS,
        "urn:xmpp:push:0",
        "http://gultsch.de/xmpp/drafts/unified-push",
    ] {
        assert!(
            features.contains(&feature),
            "{feature} missing: {features:?}"
        );
    }

    let items = h
        .exchange(&format!(
            "<iq type='get' id='d2' from='{ALICE}' to='{JID}'><query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS_NS}'/></iq>"
        ))
        .await;
    let query = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap();
    let listed: Vec<(&str, &str, bool)> = query
        .children()
        .map(|item| {
            (
                item.attr("jid").unwrap(),
                item.attr("node").unwrap(),
                item.attr("name").is_some(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (JID, "register-push-fcm", true),
            (JID, "unregister-push-fcm", true),
            (JID, "register-push-apns", true),
            (JID, "unregister-push-apns", true),
        ]
    );

    let node = h
        .exchange(&format!(
            "<iq type='get' id='d3' from='{ALICE}' to='{JID}'><query xmlns='http://jabber.org/protocol/disco#info' node='register-push-fcm'/></iq>"
        ))
        .await;
    let query = node
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(query.attr("node"), Some("register-push-fcm"));
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (identity.attr("category"), identity.attr("type")),
        (Some("automation"), Some("command-node"))
    );
    let features: Vec<&str> = query.children().filter_map(|c| c.attr("var")).collect();
    assert!(features.contains(&COMMANDS_NS), "{features:?}");
    h.stop().await;
}

#[tokio::test]
async fn without_the_app_server_role_its_requests_are_service_unavailable() {
    let options = RolesOptions {
        app_server: false,
        ..RolesOptions::default()
    };
    let mut h = start_roles(options, |_| ()).await;
    let reply = h
        .exchange(&conversations_register("r1", ALICE, "T", "A1"))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("service-unavailable".into(), "cancel".into())
    );
    let reply = h.exchange(&ejabberd_publish("n", "s")).await;
    assert_eq!(
        stanza_error(&reply),
        ("service-unavailable".into(), "cancel".into())
    );
    let info = h
        .exchange(&format!(
            "<iq type='get' id='d1' from='{ALICE}' to='{JID}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let features: Vec<&str> = query.children().filter_map(|c| c.attr("var")).collect();
    assert!(!features.contains(&COMMANDS_NS), "{features:?}");
    assert!(!features.contains(&"urn:xmpp:push:0"), "{features:?}");
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(identity.attr("category"), Some("component"));
    h.stop().await;
}
