//! Stanzas any user of the XMPP server can send to the component, built to hurt: each is that
//! stanza's problem alone. It is skipped before any tree is built, an IQ request is answered
//! with its error, and the link stays up (one session throughout).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use pushgate_xmpp::xmpp_parsers::iq::Iq;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use support::*;

/// How often each hostile stanza is sent in a row.
const REPEAT: usize = 100;
const FROM: &str = "mallory@example.test/laptop";

fn iq_get(id: &str, payload: &str) -> String {
    format!("<iq type='get' id='{id}' from='{FROM}' to='{JID}'>{payload}</iq>")
}

fn iq_set(id: &str, payload: &str) -> String {
    format!("<iq type='set' id='{id}' from='{FROM}' to='{JID}'>{payload}</iq>")
}

/// A `register-push-fcm` command whose form has `fields` fields of one value each.
fn command_with_fields(id: &str, fields: usize, values_per_field: usize) -> String {
    let value = "<value>c2VjcmV0LXRva2Vu</value>".repeat(values_per_field);
    let mut form = String::new();
    for i in 0..fields {
        form.push_str(&format!("<field var='f{i}'>{value}</field>"));
    }
    iq_set(
        id,
        &format!(
            "<command xmlns='http://jabber.org/protocol/commands' node='register-push-fcm' \
             action='execute'><x xmlns='jabber:x:data' type='submit'>{form}</x></command>"
        ),
    )
}

/// Makes the hostile stanza with the given IQ id.
type MakeStanza = Box<dyn Fn(&str) -> String>;

/// The cases of the default limits: (name, stanza with id `{id}`, expected error condition).
fn hostile_cases() -> Vec<(&'static str, MakeStanza, &'static str)> {
    let long = "v".repeat(9000);
    let name = "n".repeat(9000);
    let (long2, name2, name3) = (long.clone(), name.clone(), name.clone());
    let long3 = long.clone();
    vec![
        (
            "a 9000-byte attribute value",
            Box::new(move |id| iq_get(id, &format!("<foo xmlns='urn:x' a='{long}'/>"))),
            "policy-violation",
        ),
        (
            "a 9000-byte namespace URI",
            Box::new(move |id| iq_get(id, &format!("<foo xmlns='urn:{long2}'/>"))),
            "policy-violation",
        ),
        (
            "a 9000-byte element name",
            Box::new(move |id| iq_get(id, &format!("<{name} xmlns='urn:x'/>"))),
            "policy-violation",
        ),
        (
            "a 9000-byte attribute name",
            Box::new(move |id| iq_get(id, &format!("<foo xmlns='urn:x' {name2}='v'/>"))),
            "policy-violation",
        ),
        (
            "a 9000-byte prefix",
            Box::new(move |id| iq_get(id, &format!("<{name3}:foo xmlns:{name3}='urn:x'/>"))),
            "policy-violation",
        ),
        (
            "a 9000-byte value of the IQ's own attribute",
            Box::new(move |id| {
                format!(
                    "<iq type='get' id='{id}' from='{FROM}' to='{JID}' x='{long3}'>\
                     <ping xmlns='urn:xmpp:ping'/></iq>"
                )
            }),
            "policy-violation",
        ),
        (
            "nesting 1000 deep",
            Box::new(|id| {
                iq_get(
                    id,
                    &format!(
                        "<foo xmlns='urn:x'>{}{}</foo>",
                        "<d>".repeat(1000),
                        "</d>".repeat(1000)
                    ),
                )
            }),
            "policy-violation",
        ),
        (
            "10,000 attributes",
            Box::new(|id| {
                let attributes: String = (0..10_000).map(|i| format!(" a{i}='v'")).collect();
                iq_get(id, &format!("<foo xmlns='urn:x'{attributes}/>"))
            }),
            "policy-violation",
        ),
        (
            "a form of 5000 fields (214 KB)",
            Box::new(|id| command_with_fields(id, 5000, 1)),
            "policy-violation",
        ),
        (
            "a form of 100 fields",
            Box::new(|id| command_with_fields(id, 100, 0)),
            "policy-violation",
        ),
        (
            "a field of 40 values",
            Box::new(|id| command_with_fields(id, 2, 40)),
            "policy-violation",
        ),
        (
            "a 9000-byte entity reference",
            Box::new(|id| {
                iq_get(
                    id,
                    &format!("<foo xmlns='urn:x'>&{};</foo>", "e".repeat(9000)),
                )
            }),
            "bad-request",
        ),
        (
            "an undeclared prefix",
            Box::new(|id| iq_get(id, "<p:foo xmlns='urn:x'/>")),
            "bad-request",
        ),
        (
            "a comment",
            Box::new(|id| iq_get(id, "<foo xmlns='urn:x'><!-- hello --></foo>")),
            "bad-request",
        ),
        (
            "a mismatched end tag",
            Box::new(|id| iq_get(id, "<foo xmlns='urn:x'><a></b></foo>")),
            "bad-request",
        ),
    ]
}

#[tokio::test]
async fn hostile_stanzas_are_answered_and_the_link_stays_up() {
    let (server, running, mut session) = connected(|c| c.max_concurrent_iqs = 64).await;
    for (what, stanza, condition) in hostile_cases() {
        for round in 0..REPEAT {
            let id = format!("h{round}");
            session.send_raw(stanza(&id));
            let reply = session
                .recv_iq(STEP)
                .await
                .unwrap_or_else(|| panic!("{what}: no answer in round {round}"));
            assert_eq!(reply.id(), id, "{what}");
            assert_eq!(
                error_of(&reply),
                Some((condition.to_owned(), "modify".to_owned())),
                "{what}"
            );
        }
        // Ordinary requests still work after each kind.
        let echo = Element::builder("echo", TEST_NS)
            .append("still here")
            .build();
        session.send(request("e", true, echo.clone()));
        let reply = session.recv_iq(STEP).await.expect("no echo");
        assert!(
            matches!(&reply, Iq::Result { payload: Some(p), .. } if *p == echo),
            "{what}: {reply:?}"
        );
    }
    assert_eq!(server.handshakes(), 1);
    assert!(running.link.state().is_up());
}

#[tokio::test]
async fn hostile_messages_and_presences_are_dropped_and_the_link_stays_up() {
    let (server, running, mut session) = connected(|_| ()).await;
    let long = "v".repeat(9000);
    for stanza in [
        format!("<message from='{FROM}' to='{JID}'><body a='{long}'>x</body></message>"),
        format!("<presence from='{FROM}' to='{JID}'><{long} xmlns='urn:x'/></presence>"),
        format!("<message from='{FROM}' to='{JID}'><body><!-- c --></body></message>"),
        format!("<message from='{FROM}' to='{JID}'><b:body/></message>"),
    ] {
        for _ in 0..REPEAT {
            session.send_raw(stanza.clone());
        }
    }
    session.send(ping_request("after"));
    let reply = session.recv_iq(STEP).await.expect("link did not survive");
    assert_eq!(reply.id(), "after");
    assert!(running.handler.messages.lock().unwrap().is_empty());
    assert!(running.handler.presences.lock().unwrap().is_empty());
    assert_eq!(server.handshakes(), 1);
}

#[tokio::test]
async fn the_stream_after_a_refused_stanza_keeps_its_namespaces() {
    let (_server, _running, mut session) = connected(|_| ()).await;
    // The parser that refused the comment is replaced; the next stanza is read in the
    // stream's namespace as before, and its payload's own namespace is kept.
    session.send_raw(iq_get("bad", "<foo xmlns='urn:x'><!-- c --></foo>"));
    let reply = session.recv_iq(STEP).await.expect("no answer");
    assert_eq!(reply.id(), "bad");
    session.send_raw(iq_set(
        "good",
        &format!("<echo xmlns='{TEST_NS}' xml:lang='de'>hallo</echo>"),
    ));
    let reply = session.recv(STEP).await.expect("no echo");
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("id"), Some("good"));
    let echo = reply.get_child("echo", TEST_NS).expect("echo payload");
    assert_eq!(echo.text(), "hallo");
}

#[tokio::test]
async fn requests_holding_too_many_bytes_are_asked_to_wait() {
    let (_server, _running, mut session) = connected(|c| {
        c.max_concurrent_iqs = 64;
        c.max_request_bytes_in_flight = 8 * 1024;
    })
    .await;
    // The handler holds a `slow` request for 300 ms: the first takes 6 KiB of the 8.
    let slow = |id: &str| {
        iq_set(
            id,
            &format!("<slow xmlns='{TEST_NS}'>{}</slow>", "x".repeat(6000)),
        )
    };
    session.send_raw(slow("s1"));
    session.send_raw(slow("s2"));
    // A small request still fits beside it.
    session.send_raw(iq_set(
        "small",
        &format!("<echo xmlns='{TEST_NS}'>x</echo>"),
    ));
    let mut answers = Vec::new();
    for _ in 0..3 {
        let reply = session
            .recv_iq(Duration::from_secs(3))
            .await
            .expect("reply");
        answers.push((reply.id().to_owned(), error_of(&reply)));
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            ("s1".to_owned(), None),
            (
                "s2".to_owned(),
                Some(("resource-constraint".to_owned(), "wait".to_owned()))
            ),
            ("small".to_owned(), None),
        ]
    );
    // Once the first is answered its bytes are free again.
    session.send_raw(slow("s3"));
    let reply = session
        .recv_iq(Duration::from_secs(3))
        .await
        .expect("reply");
    assert_eq!((reply.id(), error_of(&reply)), ("s3", None));
}
