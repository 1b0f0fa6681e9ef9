//! The app server role's commands on the wire: XEP-0050 registration and its errors, and
//! how the commands are discovered.

#![allow(clippy::unwrap_used)]

mod support;

use pushgate_core::DeviceHash;
use support::JID;
use support::app_server::*;
use support::roles::*;

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
    // The APNs commands exist too, for APNs tokens (hex).
    let apns_token = "a0".repeat(32);
    let apns_fields = form(&[("token", &apns_token), ("device-id", "D1")]);
    let reply = h
        .exchange(&command(
            "c2",
            "set",
            "register-push-apns",
            Some("execute"),
            &apns_fields,
        ))
        .await;
    registration_of(&reply, "c2", ALICE, "register-push-apns");
    // A token that cannot be an APNs token is refused as the form's fault.
    let reply = h
        .exchange(&command(
            "c3",
            "set",
            "register-push-apns",
            Some("execute"),
            &fields,
        ))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("bad-request".into(), "modify".into())
    );
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
            (JID, "push-status", true),
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
    assert!(!features.contains(&"urn:xmpp:push:0"), "{features:?}");
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(identity.attr("category"), Some("component"));
    // The provider's own command stays: the only one listed.
    assert_eq!(
        features.iter().filter(|f| **f == COMMANDS_NS).count(),
        1,
        "{features:?}"
    );
    let items = h
        .exchange(&format!(
            "<iq type='get' id='d2' from='{ALICE}' to='{JID}'><query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS_NS}'/></iq>"
        ))
        .await;
    let nodes: Vec<&str> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .filter_map(|item| item.attr("node"))
        .collect();
    assert_eq!(nodes, ["push-status"]);
    h.stop().await;
}

#[tokio::test]
async fn push_status_answers_the_caller_with_a_table_of_its_own() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let reply = h
        .exchange(&format!(
            "<iq type='set' id='s1' from='{ALICE}' to='{JID}'><command xmlns='{COMMANDS_NS}' node='push-status' action='execute'/></iq>"
        ))
        .await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        String::from(&reply)
    );
    let command = reply.get_child("command", COMMANDS_NS).unwrap();
    assert_eq!(command.attr("status"), Some("completed"));
    let form = command.get_child("x", "jabber:x:data").unwrap();
    assert_eq!(form.attr("type"), Some("result"));
    let columns: Vec<&str> = form
        .get_child("reported", "jabber:x:data")
        .unwrap()
        .children()
        .filter_map(|field| field.attr("var"))
        .collect();
    assert_eq!(
        columns,
        ["time", "step", "outcome", "latency", "app", "trace"]
    );
    // Nothing was delivered to this user: no rows, and nothing waiting.
    assert_eq!(form.children().filter(|c| c.name() == "item").count(), 0);
    let instructions = form
        .get_child("instructions", "jabber:x:data")
        .unwrap()
        .text();
    assert!(
        instructions.contains("waiting for this device: 0"),
        "{instructions}"
    );
    // A command is a set (XEP-0050 §3).
    let reply = h
        .exchange(&format!(
            "<iq type='get' id='s2' from='{ALICE}' to='{JID}'><command xmlns='{COMMANDS_NS}' node='push-status' action='execute'/></iq>"
        ))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("bad-request".into(), "modify".into())
    );
    h.stop().await;
}

#[tokio::test]
async fn a_new_device_past_the_account_limit_is_a_policy_violation() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    // The default limit is 32 devices per account.
    let mut first = None;
    for n in 0..32 {
        let registered = register(&mut h, ALICE, "T", &format!("{n:016x}")).await;
        first.get_or_insert(registered);
    }
    let reply = h
        .exchange(&command(
            "over",
            "set",
            "register-push-fcm",
            Some("execute"),
            &form(&[("token", "T"), ("android-id", "ffffffffffffffff")]),
        ))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("policy-violation".into(), "modify".into())
    );
    assert_eq!(h.store.registrations().len(), 32);
    // A device already registered still registers, with a new token too.
    let again = register(&mut h, ALICE, "T2", &format!("{:016x}", 0)).await;
    assert_eq!(Some(again), first);
    // Another account of the same server is not affected.
    register(&mut h, "bob@example.test/phone", "T", "ffffffffffffffff").await;
    h.stop().await;
}
