//! The UnifiedPush provider role (up) on the wire: `<register/>`, pushes to the client and
//! the client's answers, and store and forward on presence and on link-up.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use pushgate_core::client_link::{ClientLink, PushDelivery, UpPush};
use pushgate_core::provider::{AcceptOutcome, IncomingMessage};
use pushgate_core::unified_push::iso8601_utc;
use pushgate_core::{MessageStore as _, OwnerKey};
use pushgate_xmpp::XmppClientLink;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use support::roles::*;
use support::{JID, STEP};

const UP_NS: &str = "http://gultsch.de/xmpp/drafts/unified-push";
const OWNER: &str = "alice@example.test/8Dg548Ta80y6";
/// base64(sha256('app-1')) and base64(sha256('instance-1')), from the Prosody capture.
const APPLICATION: &str = "XrfnJea6xD8qkGQ3qnvggAgd54an0S97lkm+R7adbKA=";
const INSTANCE: &str = "YhKgbKyLUPep9KJmf7gXhyLL9I5eWSIZO11vXZQT0ew=";

/// The client's registration as captured (`prosody-unified-push.txt`), addressed to us.
fn register_stanza(id: &str, from: &str, application: &str, instance: &str) -> String {
    format!(
        "<iq type='set' to='{JID}' from='{from}' id='{id}'><register xmlns='{UP_NS}' \
         instance='{instance}' application='{application}'/></iq>"
    )
}

/// Registers `OWNER` and returns the endpoint token.
async fn register(h: &mut RolesHarness) -> String {
    let reply = h
        .exchange(&register_stanza("r", OWNER, APPLICATION, INSTANCE))
        .await;
    let registered = reply
        .get_child("registered", UP_NS)
        .expect("no <registered/>");
    let endpoint = registered.attr("endpoint").unwrap();
    endpoint
        .strip_prefix(&format!("{PUBLIC_URL}/push/"))
        .unwrap()
        .to_owned()
}

/// The next stanza must be a push IQ to `OWNER`; returns it.
async fn next_push(h: &mut RolesHarness) -> Element {
    let push = h.session.recv(STEP).await.expect("no push IQ");
    let text = String::from(&push);
    assert!(push.is("iq", COMPONENT_NS), "{text}");
    assert_eq!(push.attr("type"), Some("set"), "{text}");
    // Conversations checks `from` against the exact component JID (docs/protocol.md B §5 trap 12).
    assert_eq!(push.attr("from"), Some(JID), "{text}");
    assert_eq!(push.attr("to"), Some(OWNER), "{text}");
    assert!(push.attr("id").unwrap().starts_with("t1."), "{text}");
    push
}

fn body_of(push: &Element) -> String {
    let payload = push.get_child("push", UP_NS).expect("no <push/>");
    assert_eq!(payload.attr("application"), Some(APPLICATION));
    assert_eq!(payload.attr("instance"), Some(INSTANCE));
    payload.text()
}

/// The client's `result` to a push.
fn result_to(push: &Element) -> String {
    format!(
        "<iq type='result' id='{}' from='{OWNER}' to='{JID}'/>",
        push.attr("id").unwrap()
    )
}

/// An error answer to a push, as the client (or its server) writes it.
fn error_to(push: &Element, type_: &str, condition: &str) -> String {
    format!(
        "<iq type='error' id='{}' from='{OWNER}' to='{JID}'><error type='{type_}'>\
         <{condition} xmlns='{STANZAS_NS}'/></error></iq>",
        push.attr("id").unwrap()
    )
}

/// Prosody 0.12.3's answer for an offline resource (`prosody-iq-error-offline.xml`).
fn prosody_offline_to(push: &Element) -> String {
    "<iq from='alice@example.test/gone' id='23fbe9d604a64490ad343f0963f26773' type='error' to='push.example.test'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        .replace("alice@example.test/gone", OWNER)
        .replace("23fbe9d604a64490ad343f0963f26773", push.attr("id").unwrap())
}

fn spawn_push(h: &RolesHarness, body: &'static [u8]) -> tokio::task::JoinHandle<PushDelivery> {
    spawn_push_to(h, OWNER, APPLICATION, body)
}

fn spawn_push_to(
    h: &RolesHarness,
    owner: &'static str,
    application: &'static str,
    body: &'static [u8],
) -> tokio::task::JoinHandle<PushDelivery> {
    let client_link = h.client_link.clone();
    tokio::spawn(async move {
        client_link
            .push(UpPush {
                owner,
                application,
                instance: INSTANCE,
                body,
                endpoint_token: "",
            })
            .await
    })
}

fn spawn_accept(
    h: &RolesHarness,
    token: &str,
    body: &[u8],
) -> tokio::task::JoinHandle<AcceptOutcome> {
    let (provider, token, body) = (h.provider.clone(), token.to_owned(), body.to_vec());
    tokio::spawn(async move {
        let message = IncomingMessage {
            body: &body,
            ..IncomingMessage::default()
        };
        provider.accept(&token, message).await
    })
}

async fn stored_count(h: &RolesHarness) -> usize {
    h.store
        .messages_for_owner(&OwnerKey::of_jid(OWNER), NOW, 100)
        .await
        .unwrap()
        .len()
}

/// Sends a message while the client is offline (Prosody answers service-unavailable).
async fn store_while_offline(h: &mut RolesHarness, token: &str, body: &[u8]) {
    let accepted = spawn_accept(h, token, body);
    let push = next_push(h).await;
    h.session.send_raw(prosody_offline_to(&push));
    assert!(matches!(
        accepted.await.unwrap(),
        AcceptOutcome::Stored { .. }
    ));
}

#[tokio::test]
async fn register_returns_an_endpoint_and_a_z_expiration() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let reply = h
        .exchange(&register_stanza("r1", OWNER, APPLICATION, INSTANCE))
        .await;
    let text = String::from(&reply);
    assert_eq!(reply.attr("type"), Some("result"), "{text}");
    assert_eq!(reply.attr("id"), Some("r1"));
    assert_eq!(reply.attr("from"), Some(JID));
    assert_eq!(reply.attr("to"), Some(OWNER));
    let registered = reply.get_child("registered", UP_NS).expect(&text);
    let endpoint = registered.attr("endpoint").unwrap();
    assert!(
        endpoint.starts_with(&format!("{PUBLIC_URL}/push/v2.local.")),
        "{endpoint}"
    );
    let expiration = registered.attr("expiration").unwrap();
    assert_eq!(expiration, iso8601_utc(NOW + 7 * 24 * 3600 * 1000));
    assert!(expiration.ends_with('Z'), "{expiration}");
    // The token names the full JID that registered, and the ids as sent.
    let token = endpoint.rsplit('/').next().unwrap();
    let claims = h.provider.open_endpoint(token).await.unwrap().unwrap();
    assert_eq!(claims.owner, OWNER);
    assert_eq!(claims.application.as_str(), APPLICATION);
    assert_eq!(claims.instance.as_str(), INSTANCE);
    h.stop().await;
}

#[tokio::test]
async fn bad_registrations_get_bad_request_and_foreign_domains_forbidden() {
    let options = RolesOptions {
        allowed_domains: Some(vec!["example.test".to_owned()]),
        ..RolesOptions::default()
    };
    let mut h = start_roles(options, |_| ()).await;
    let short = "YhKgbKyLUPep9KJmf7gXhyLL9I5eWSIZO11vXZQT0e==";
    let rows = [
        (
            "not base64",
            register_stanza("b1", OWNER, "not base64!", INSTANCE),
        ),
        ("31 bytes", register_stanza("b2", OWNER, APPLICATION, short)),
        (
            "url-safe alphabet",
            register_stanza("b3", OWNER, &APPLICATION.replace('+', "-"), INSTANCE),
        ),
        (
            "no attributes",
            format!(
                "<iq type='set' to='{JID}' from='{OWNER}' id='b4'><register xmlns='{UP_NS}'/></iq>"
            ),
        ),
        (
            "get",
            register_stanza("b5", OWNER, APPLICATION, INSTANCE).replace("type='set'", "type='get'"),
        ),
        (
            "bare JID",
            register_stanza("b6", "alice@example.test", APPLICATION, INSTANCE),
        ),
    ];
    for (what, stanza) in rows {
        let reply = h.exchange(&stanza).await;
        assert_eq!(
            stanza_error(&reply),
            ("bad-request".into(), "modify".into()),
            "{what}"
        );
    }
    let reply = h
        .exchange(&register_stanza(
            "f1",
            "mallory@other.test/x",
            APPLICATION,
            INSTANCE,
        ))
        .await;
    assert_eq!(stanza_error(&reply), ("forbidden".into(), "auth".into()));
    let reply = h
        .exchange(&register_stanza("ok", OWNER, APPLICATION, INSTANCE))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    h.stop().await;
}

#[tokio::test]
async fn a_push_is_p2s_iq_and_the_answer_is_classified() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    // result → delivered; the body is standard padded base64 (from the Prosody capture).
    let pushed = spawn_push(&h, b"hello-up-payload");
    let push = next_push(&mut h).await;
    assert_eq!(body_of(&push), "aGVsbG8tdXAtcGF5bG9hZA==");
    h.session.send_raw(result_to(&push));
    assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered);

    // Bytes that need `+`, `/` and padding, and no line breaks on a long body.
    let body: &'static [u8] = Box::leak(vec![0xfb_u8; 4096].into_boxed_slice());
    let pushed = spawn_push(&h, body);
    let push = next_push(&mut h).await;
    let text = body_of(&push);
    assert_eq!(text.len(), 5464);
    assert!(text.starts_with("+/v7") && text.ends_with("+w==") && !text.contains('\n'));
    h.session.send_raw(result_to(&push));
    assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered);

    // An empty body is an empty element.
    let pushed = spawn_push(&h, b"");
    let push = next_push(&mut h).await;
    assert_eq!(push.get_child("push", UP_NS).unwrap().nodes().count(), 0);
    h.session.send_raw(result_to(&push));
    assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered);

    // The client no longer knows the endpoint → revoked.
    for condition in ["item-not-found", "feature-not-implemented"] {
        let pushed = spawn_push(&h, b"x");
        let push = next_push(&mut h).await;
        h.session.send_raw(error_to(&push, "cancel", condition));
        assert_eq!(pushed.await.unwrap(), PushDelivery::Revoked, "{condition}");
    }

    // The resource is offline (Prosody's exact answer), or any other error → not delivered.
    let pushed = spawn_push(&h, b"x");
    let push = next_push(&mut h).await;
    h.session.send_raw(prosody_offline_to(&push));
    assert!(matches!(
        pushed.await.unwrap(),
        PushDelivery::NotDelivered(_)
    ));
    let pushed = spawn_push(&h, b"x");
    let push = next_push(&mut h).await;
    h.session
        .send_raw(error_to(&push, "wait", "resource-constraint"));
    assert!(matches!(
        pushed.await.unwrap(),
        PushDelivery::NotDelivered(_)
    ));
    h.stop().await;
}

#[tokio::test]
async fn each_push_goes_to_its_own_owner_and_an_owner_that_is_no_jid_to_nobody() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    // The same owners again and again, as a busy endpoint's messages come.
    let bob = "bob@example.test/phone";
    for owner in [OWNER, bob, OWNER, bob, bob] {
        let pushed = spawn_push_to(&h, owner, APPLICATION, b"x");
        let push = h.session.recv(STEP).await.expect("a push");
        assert_eq!(push.attr("to"), Some(owner), "{push:?}");
        h.session.send_raw(format!(
            "<iq type='result' id='{}' from='{owner}' to='{JID}'/>",
            push.attr("id").expect("id")
        ));
        assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered, "{owner}");
    }
    // Twice: a JID that failed to parse is not remembered as anything.
    for _ in 0..2 {
        let pushed = spawn_push_to(&h, "@example.test/nobody", APPLICATION, b"x");
        assert!(matches!(
            pushed.await.unwrap(),
            PushDelivery::NotDelivered(_)
        ));
    }
    assert!(h.session.recv(Duration::from_millis(200)).await.is_none());
    h.stop().await;
}

#[tokio::test]
async fn attribute_values_are_escaped_and_values_xml_cannot_carry_are_not_sent() {
    let options = RolesOptions {
        push_deadline: Duration::from_millis(300),
        ..RolesOptions::default()
    };
    let mut h = start_roles(options, |_| ()).await;
    let push_with = |h: &RolesHarness, application: &'static str| {
        spawn_push_to(h, OWNER, application, b"\xfb\xff<&>")
    };

    // Only ids from registrations get here, but whatever they hold arrives as it was.
    let application = "a'p\"p<&>\t\u{e9}";
    let pushed = push_with(&h, application);
    let push = next_push(&mut h).await;
    let payload = push.get_child("push", UP_NS).unwrap();
    assert_eq!(payload.attr("application"), Some(application));
    assert_eq!(payload.attr("instance"), Some(INSTANCE));
    assert_eq!(payload.text(), "+/88Jj4=");
    h.session.send_raw(result_to(&push));
    assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered);

    // A control character cannot be written at all: nothing goes out and the push is not
    // delivered, while the link goes on.
    let pushed = push_with(&h, "bad\u{1}");
    assert!(h.session.recv(Duration::from_millis(400)).await.is_none());
    assert!(matches!(
        pushed.await.unwrap(),
        PushDelivery::NotDelivered(_)
    ));
    let pushed = spawn_push(&h, b"x");
    let push = next_push(&mut h).await;
    h.session.send_raw(result_to(&push));
    assert_eq!(pushed.await.unwrap(), PushDelivery::Delivered);
    h.stop().await;
}

#[tokio::test]
async fn no_answer_in_time_or_no_link_is_not_delivered() {
    let options = RolesOptions {
        push_deadline: Duration::from_millis(150),
        ..RolesOptions::default()
    };
    let mut h = start_roles(options, |_| ()).await;
    let pushed = spawn_push(&h, b"x");
    let push = next_push(&mut h).await;
    let delivery = pushed.await.unwrap();
    assert!(
        matches!(&delivery, PushDelivery::NotDelivered(why) if why.contains("deadline")),
        "{delivery:?}"
    );
    // A late answer is dropped without harm.
    h.session.send_raw(result_to(&push));
    assert_eq!(h.link.pending_iqs(), 0);

    let unattached = XmppClientLink::default();
    let delivery = unattached
        .push(UpPush {
            owner: OWNER,
            application: APPLICATION,
            instance: INSTANCE,
            body: b"x",
            endpoint_token: "",
        })
        .await;
    assert_eq!(
        delivery,
        PushDelivery::NotDelivered("link not started".into())
    );
    assert_eq!(
        h.client_link.attach(h.link.clone()),
        Err(pushgate_xmpp::AlreadyAttached)
    );
    h.stop().await;
}

#[tokio::test]
async fn available_presence_flushes_stored_messages_in_order() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let token = register(&mut h).await;
    store_while_offline(&mut h, &token, b"first").await;
    store_while_offline(&mut h, &token, b"second").await;
    assert_eq!(stored_count(&h).await, 2);

    // Unavailable presence and presence from the bare JID do not flush.
    h.session.send_raw(format!(
        "<presence type='unavailable' from='{OWNER}' to='{JID}'/><presence from='alice@example.test' to='{JID}'/>"
    ));
    assert!(h.session.recv(Duration::from_millis(200)).await.is_none());

    // Conversations sends available presence to the provider on every bind.
    h.session
        .send_raw(format!("<presence from='{OWNER}' to='{JID}'/>"));
    for expected in ["Zmlyc3Q=", "c2Vjb25k"] {
        let push = next_push(&mut h).await;
        assert_eq!(body_of(&push), expected);
        h.session.send_raw(result_to(&push));
    }
    tokio::time::timeout(STEP, async {
        while h.roles.running_flushes() > 0 || stored_count(&h).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("messages not flushed");
    h.stop().await;
}

#[tokio::test]
async fn a_revoked_endpoint_is_not_found_afterwards() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let token = register(&mut h).await;
    let accepted = spawn_accept(&h, &token, b"x");
    let push = next_push(&mut h).await;
    h.session
        .send_raw(error_to(&push, "cancel", "item-not-found"));
    assert_eq!(accepted.await.unwrap(), AcceptOutcome::NotFound);
    // No IQ for a revoked endpoint.
    assert_eq!(
        spawn_accept(&h, &token, b"y").await.unwrap(),
        AcceptOutcome::NotFound
    );
    assert!(h.session.recv(Duration::from_millis(100)).await.is_none());
    h.stop().await;
}

#[tokio::test]
async fn link_up_flushes_everything_kept() {
    let mut h = start_roles(RolesOptions::default(), |c| {
        c.reconnect.initial = Duration::from_millis(20);
    })
    .await;
    let token = register(&mut h).await;
    store_while_offline(&mut h, &token, b"kept").await;
    // The server closes the stream; when the link is back, what was kept goes out.
    h.session.close_stream();
    h.session = h.server.next_session(STEP).await.expect("no reconnect");
    let push = next_push(&mut h).await;
    assert_eq!(body_of(&push), "a2VwdA==");
    h.session.send_raw(result_to(&push));
    tokio::time::timeout(STEP, async {
        while stored_count(&h).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("kept message not flushed");
    assert_eq!(h.server.handshakes(), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_link_up_flush_the_database_failed_is_tried_again_until_it_succeeds() {
    let mut h = start_roles(RolesOptions::default(), |c| {
        c.reconnect.initial = Duration::from_millis(20);
    })
    .await;
    let token = register(&mut h).await;
    store_while_offline(&mut h, &token, b"kept").await;
    // The database is down when the link comes back: the flush fails, and is tried again.
    h.store.set_unavailable(true);
    h.session.close_stream();
    h.session = h.server.next_session(STEP).await.expect("no reconnect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.store.set_unavailable(false);
    // No presence and no new link: the retry alone sends what was kept.
    let push = next_push(&mut h).await;
    assert_eq!(body_of(&push), "a2VwdA==");
    h.session.send_raw(result_to(&push));
    tokio::time::timeout(STEP, async {
        while stored_count(&h).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("kept message not flushed");
    assert_eq!(h.server.handshakes(), 2);
    h.stop().await;
}
