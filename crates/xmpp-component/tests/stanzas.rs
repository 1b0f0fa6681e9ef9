//! Stanza in, stanza out: built-in answers, handler replies, broken stanzas, limits.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use pushgate_xmpp::XmlLimits;
use pushgate_xmpp::xmpp_parsers::disco::{DiscoInfoResult, DiscoItemsResult};
use pushgate_xmpp::xmpp_parsers::iq::Iq;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use pushgate_xmpp::xmpp_parsers::presence::Presence;
use support::*;

#[tokio::test]
async fn disco_info_lists_identity_and_features() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    let query = Element::builder("query", "http://jabber.org/protocol/disco#info").build();
    session.send(request("d1", false, query));
    let reply = session.recv_iq(STEP).await.expect("no reply");
    let Iq::Result {
        from,
        to,
        id,
        payload: Some(payload),
    } = reply
    else {
        panic!("not a result: {reply:?}");
    };
    assert_eq!(
        (from, to, id.as_str()),
        (Some(jid(JID)), Some(jid("alice@example.test/phone")), "d1")
    );
    let info = DiscoInfoResult::try_from(payload).unwrap();
    assert_eq!(info.identities.len(), 1);
    assert_eq!(info.identities[0].category, "component");
    for feature in [
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "urn:xmpp:ping",
        "urn:pushgate:test:feature",
    ] {
        assert!(info.features.contains(feature), "missing {feature}");
    }
}

#[tokio::test]
async fn disco_info_of_an_unknown_node_is_item_not_found() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    let query = Element::builder("query", "http://jabber.org/protocol/disco#info")
        .attr("node".try_into().unwrap(), "nope")
        .build();
    session.send(request("d2", false, query));
    let reply = session.recv_iq(STEP).await.expect("no reply");
    assert_eq!(
        error_of(&reply),
        Some(("item-not-found".into(), "cancel".into()))
    );
}

#[tokio::test]
async fn disco_items_for_the_command_node_and_empty_otherwise() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    let commands = Element::builder("query", "http://jabber.org/protocol/disco#items")
        .attr(
            "node".try_into().unwrap(),
            "http://jabber.org/protocol/commands",
        )
        .build();
    session.send(request("i1", false, commands));
    let Some(Iq::Result {
        payload: Some(payload),
        ..
    }) = session.recv_iq(STEP).await
    else {
        panic!("no result");
    };
    let items = DiscoItemsResult::try_from(payload).unwrap();
    assert_eq!(
        items.node.as_deref(),
        Some("http://jabber.org/protocol/commands")
    );
    assert_eq!(items.items.len(), 1);
    assert_eq!(items.items[0].node.as_deref(), Some("register-push-fcm"));

    session.send(request(
        "i2",
        false,
        Element::builder("query", "http://jabber.org/protocol/disco#items").build(),
    ));
    let Some(Iq::Result {
        payload: Some(payload),
        ..
    }) = session.recv_iq(STEP).await
    else {
        panic!("no result");
    };
    assert!(
        DiscoItemsResult::try_from(payload)
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn ping_gets_an_empty_result() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    session.send(ping_request("p1"));
    let reply = session.recv_iq(STEP).await.expect("no reply");
    assert!(
        matches!(&reply, Iq::Result { id, payload: None, .. } if id == "p1"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn handler_answers_its_own_requests() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    let echo = Element::builder("echo", TEST_NS).append("hello").build();
    session.send(request("e1", true, echo.clone()));
    let reply = session.recv_iq(STEP).await.expect("no reply");
    assert!(
        matches!(&reply, Iq::Result { id, payload: Some(p), .. } if id == "e1" && *p == echo),
        "{reply:?}"
    );
}

#[tokio::test]
async fn unknown_iq_is_service_unavailable_in_the_default_namespace() {
    let (_server, _link, mut session) = connected(|_| ()).await;
    session.send(request(
        "u1",
        true,
        Element::builder("whatever", "urn:unknown").build(),
    ));
    let reply = session.recv(STEP).await.expect("no reply");
    let error = reply
        .get_child("error", "jabber:component:accept")
        .expect("error not in the stream namespace");
    assert_eq!(error.attr("type"), Some("cancel"));
    assert!(error.has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert_eq!(reply.attr("id"), Some("u1"));
    assert_eq!(reply.attr("to"), Some("alice@example.test/phone"));
}

#[tokio::test]
async fn malformed_stanza_gets_bad_request_and_the_link_survives() {
    let (server, running, mut session) = connected(|_| ()).await;
    // An IQ get must carry exactly one payload (RFC 6120 §8.2.3).
    session.send_raw(
        "<iq type='get' id='m1' from='alice@example.test/phone' to='push.example.test'/>",
    );
    let reply = session.recv_iq(STEP).await.expect("no reply");
    assert_eq!(
        error_of(&reply),
        Some(("bad-request".into(), "modify".into()))
    );
    assert_eq!(reply.id(), "m1");
    // A broken JID inside a message and an unknown top-level element: dropped silently.
    session.send_raw("<message from='@@@' to='push.example.test'><body>x</body></message>");
    session.send_raw("<unknown xmlns='urn:nothing'><deep/></unknown>");
    // A broken IQ result is not answered (only requests are).
    session.send_raw("<iq type='result' from='alice@example.test/phone' to='push.example.test'/>");
    session.send(ping_request("after"));
    let reply = session.recv_iq(STEP).await.expect("link did not survive");
    assert!(
        matches!(&reply, Iq::Result { id, .. } if id == "after"),
        "{reply:?}"
    );
    assert_eq!(server.handshakes(), 1);
    assert!(running.link.state().is_up());
}

#[tokio::test]
async fn over_limit_stanzas_are_skipped_with_policy_violation() {
    let limits = XmlLimits {
        max_stanza_bytes: 2048,
        max_depth: 6,
        max_attribute_bytes: 128,
        ..XmlLimits::default()
    };
    let (server, _running, mut session) = connected(|c| c.limits = limits).await;
    let head = "<iq type='set' from='alice@example.test/phone' to='push.example.test'";
    let big = format!(
        "{head} id='big'><echo xmlns='{TEST_NS}'>{}</echo></iq>",
        "a".repeat(3000)
    );
    let deep = format!(
        "{head} id='deep'><echo xmlns='{TEST_NS}'>{}{}</echo></iq>",
        "<d>".repeat(8),
        "</d>".repeat(8)
    );
    let long_attr = format!(
        "{head} id='attr'><echo xmlns='{TEST_NS}' a='{}'/></iq>",
        "v".repeat(200)
    );
    for (id, stanza) in [("big", big), ("deep", deep), ("attr", long_attr)] {
        session.send_raw(stanza);
        let reply = session.recv_iq(STEP).await.expect("no reply");
        assert_eq!(reply.id(), id);
        assert_eq!(
            error_of(&reply),
            Some(("policy-violation".into(), "modify".into())),
            "{id}"
        );
    }
    // Just under the limits passes.
    let fine = format!(
        "{head} id='fine'><echo xmlns='{TEST_NS}'>{}</echo></iq>",
        "a".repeat(1500)
    );
    session.send_raw(fine);
    assert!(matches!(
        session.recv_iq(STEP).await,
        Some(Iq::Result { .. })
    ));
    assert_eq!(server.handshakes(), 1);
}

#[tokio::test]
async fn a_stanza_of_any_size_is_skipped_and_the_session_goes_on() {
    let limits = XmlLimits {
        max_stanza_bytes: 2048,
        ..XmlLimits::default()
    };
    let (server, running, mut session) = connected(|c| c.limits = limits).await;
    // A hundred times the limit: skipped as it streams by, never kept.
    let huge = format!(
        "<message from='alice@example.test/phone' to='push.example.test'><body>{}</body></message>",
        "a".repeat(200 * 1024)
    );
    session.send_raw(huge);
    session.send(ping_request("after"));
    let reply = session.recv_iq(STEP).await.expect("link did not survive");
    assert_eq!(reply.id(), "after");
    assert!(running.handler.messages.lock().unwrap().is_empty());
    assert_eq!(server.handshakes(), 1);
    assert!(running.link.state().is_up());
}

#[tokio::test]
async fn requests_past_a_full_queue_get_resource_constraint_wait() {
    let (_server, _running, mut session) = connected(|c| {
        c.max_concurrent_iqs = 1;
        c.max_queued_iqs = 0;
    })
    .await;
    session.send(request(
        "s1",
        true,
        Element::builder("slow", TEST_NS).build(),
    ));
    session.send(request(
        "s2",
        true,
        Element::builder("slow", TEST_NS).build(),
    ));
    let first = session.recv_iq(STEP).await.expect("no reply");
    assert_eq!(first.id(), "s2");
    assert_eq!(
        error_of(&first),
        Some(("resource-constraint".into(), "wait".into()))
    );
    let second = session.recv_iq(STEP).await.expect("no reply");
    assert!(
        matches!(&second, Iq::Result { id, .. } if id == "s1"),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_burst_past_the_running_limit_waits_its_turn() {
    let (_server, _running, mut session) = connected(|c| c.max_concurrent_iqs = 1).await;
    for id in ["q1", "q2", "q3"] {
        session.send(request(id, true, Element::builder("slow", TEST_NS).build()));
    }
    // Each takes 300 ms and only one runs at a time: all three are answered, in order.
    for id in ["q1", "q2", "q3"] {
        let reply = session.recv_iq(STEP).await.expect("no reply");
        assert!(
            matches!(&reply, Iq::Result { id: got, .. } if got == id),
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn a_request_that_waits_past_the_queue_wait_gets_resource_constraint_wait() {
    let (_server, _running, mut session) = connected(|c| {
        c.max_concurrent_iqs = 1;
        c.iq_queue_wait = Duration::from_millis(100);
    })
    .await;
    session.send(request(
        "w1",
        true,
        Element::builder("slow", TEST_NS).build(),
    ));
    session.send(request(
        "w2",
        true,
        Element::builder("slow", TEST_NS).build(),
    ));
    let first = session.recv_iq(STEP).await.expect("no reply");
    assert_eq!(first.id(), "w2");
    assert_eq!(
        error_of(&first),
        Some(("resource-constraint".into(), "wait".into()))
    );
    let second = session.recv_iq(STEP).await.expect("no reply");
    assert!(
        matches!(&second, Iq::Result { id, .. } if id == "w1"),
        "{second:?}"
    );
}

#[tokio::test]
async fn presence_and_message_reach_the_handler() {
    let (_server, running, session) = connected(|_| ()).await;
    let mut presence = Presence::available();
    presence.from = Some(jid("alice@example.test/phone"));
    presence.to = Some(jid(JID));
    session.send(presence);
    session.send_raw(
        "<message from='alice@example.test/phone' to='push.example.test'><body>hi</body></message>",
    );
    tokio::time::timeout(STEP, async {
        loop {
            let got = (
                running.handler.presences.lock().unwrap().len(),
                running.handler.messages.lock().unwrap().len(),
            );
            if got == (1, 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("handler did not see both stanzas");
    assert_eq!(*running.handler.link_ups.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_burst_of_requests_is_answered_in_order() {
    let (_server, _running, mut session) = connected(|c| c.outbound_queue = 256).await;
    const N: usize = 5000;
    let mut burst = String::with_capacity(N * 120);
    for i in 0..N {
        burst.push_str(&format!(
            "<iq type='get' id='b{i}' from='example.test' to='push.example.test'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
    }
    let started = std::time::Instant::now();
    session.send_raw(burst);
    for i in 0..N {
        let reply = session.recv_iq(STEP).await.expect("reply missing");
        assert_eq!(reply.id(), format!("b{i}"));
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{N} pings answered in {elapsed:?} ({:.0}/s, fake server parsing included)",
        N as f64 / elapsed.as_secs_f64()
    );
}
