//! The token-in-node role on the wire (docs/protocol.md A.2b): Monal's publish, as Prosody
//! copies its enable form into the publish options, and every refusal, none of which reaches
//! the push service.

#![allow(clippy::unwrap_used)]

mod support;

use pushgate_core::WakeOutcome;
use support::JID;
use support::roles::*;

const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn monal_publish(id: &str, node: &str, fields: &str) -> String {
    format!(
        "<iq type='set' id='{id}' from='example.test' to='{JID}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<publish node='{node}'><item><notification xmlns='urn:xmpp:push:0'/></item></publish>\
<publish-options><x xmlns='jabber:x:data' type='submit'>\
<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
{fields}</x></publish-options></pubsub></iq>"
    )
}

fn module(name: &str) -> String {
    format!("<field var='pushModule'><value>{name}</value></field>")
}

fn options() -> RolesOptions {
    RolesOptions {
        push_modules: true,
        provider: false,
        ..RolesOptions::default()
    }
}

#[tokio::test]
async fn monal_s_publish_wakes_its_token_and_a_secret_is_ignored() {
    let mut h = start_roles(options(), |_| ()).await;
    let reply = h
        .exchange(&monal_publish("m1", TOKEN, &module("monalProdiOS")))
        .await;
    assert_empty_result(&reply, "m1");
    // No pushModule: the default module; a secret field is taken and ignored.
    let reply = h
        .exchange(&monal_publish(
            "m2",
            TOKEN,
            "<field var='secret'><value>whatever</value></field>",
        ))
        .await;
    assert_empty_result(&reply, "m2");
    assert_eq!(
        h.waker.tokens_and_devices(),
        vec![(TOKEN.to_owned(), String::new()); 2],
        "the token, and no device hash"
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_nodes_and_unknown_modules_are_refused_and_never_sent() {
    let mut h = start_roles(options(), |_| ()).await;
    let long_node = "a".repeat(4000);
    let long_module = module(&"m".repeat(1000));
    let huge_node = "a".repeat(10_240);
    let rows: Vec<(String, (&str, &str))> = vec![
        (
            monal_publish("b1", "not-a-hex-token", &module("monalProdiOS")),
            ("bad-request", "modify"),
        ),
        (
            monal_publish("b2", &long_node, &module("monalProdiOS")),
            ("bad-request", "modify"),
        ),
        (
            monal_publish("b3", TOKEN, &module("quicksyProdiOS")),
            ("item-not-found", "cancel"),
        ),
        (
            monal_publish("b4", TOKEN, &long_module),
            ("item-not-found", "cancel"),
        ),
        // Past the link's attribute limit: refused before it is parsed at all.
        (
            monal_publish("b5", &huge_node, &module("monalProdiOS")),
            ("policy-violation", "modify"),
        ),
    ];
    for (stanza, (condition, type_)) in rows {
        let reply = h.exchange(&stanza).await;
        assert_eq!(
            stanza_error(&reply),
            (condition.to_owned(), type_.to_owned()),
            "{}",
            &stanza[..80]
        );
    }
    assert!(
        h.waker.calls().is_empty(),
        "nothing reached the push service"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_dead_token_is_item_not_found_and_not_asked_again_while_passing_trouble_is_wait() {
    let mut h = start_roles(options(), |_| ()).await;
    h.waker.answer(WakeOutcome::Transient("APNs 503".into()));
    let reply = h
        .exchange(&monal_publish("w1", TOKEN, &module("monalProdiOS")))
        .await;
    assert_eq!(
        stanza_error(&reply),
        ("recipient-unavailable".into(), "wait".into())
    );
    h.waker.answer(WakeOutcome::TokenDead);
    for id in ["d1", "d2", "d3"] {
        let reply = h
            .exchange(&monal_publish(id, TOKEN, &module("monalProdiOS")))
            .await;
        assert_eq!(
            stanza_error(&reply),
            ("item-not-found".into(), "cancel".into())
        );
    }
    assert_eq!(
        h.waker.calls().len(),
        2,
        "the dead token was asked about once"
    );
    h.stop().await;
}
