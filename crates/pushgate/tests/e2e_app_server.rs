//! The XEP-0357 app server end to end, against real Prosody and real ejabberd: a client
//! playing Conversations registers with `register-push-fcm`, enables push on its own server
//! and goes offline; another user's message makes the server publish to pushgate, and
//! pushgate wakes the phone through (a fake) FCM.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use e2e::{COMPONENT, DOMAIN, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::conversations::{
    PushRegistration, account_fingerprint, push_enable, read_push_registration, register_push_fcm,
};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};

const ANDROID_ID: &str = "92afd7a91cdba9a0";
const CAROL_ANDROID_ID: &str = "0c2a5e1f9b8d7c6a";
const DAVE_ANDROID_ID: &str = "7e3f00d1c0ffee42";
/// XEP-0198 stream management, which Conversations requires before it enables push.
const NS_SM: &str = "urn:xmpp:sm:3";
/// How long any one awaited event may take before the test fails.
const STEP: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_server_wakes_the_phone_through_prosody() {
    app_server_end_to_end(
        ServerKind::Prosody,
        "app_server_wakes_the_phone_through_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_server_wakes_the_phone_through_ejabberd() {
    app_server_end_to_end(
        ServerKind::Ejabberd,
        "app_server_wakes_the_phone_through_ejabberd",
    )
    .await;
}

/// Registers as Conversations does and checks the answer as Conversations does, plus the
/// formats of docs/protocol.md A.2 (12-character node, 24-character secret, `jid` = component).
async fn register(client: &C2sClient, token: &str, android_id: &str) -> PushRegistration {
    let answer = client
        .iq(register_push_fcm(COMPONENT, token, android_id))
        .await
        .unwrap();
    let registration = read_push_registration(&answer, COMPONENT).unwrap();
    assert_eq!(registration.jid.as_deref(), Some(COMPONENT));
    for (value, len) in [(&registration.node, 12), (&registration.secret, 24)] {
        assert_eq!(value.len(), len, "{value}");
        assert!(STANDARD.decode(value).is_ok(), "standard base64: {value}");
    }
    registration
}

/// The XEP-0357 `enable` to the account's own server; it must accept it.
async fn enable(server: &XmppServer, client: &C2sClient, node: &str, secret: &str) {
    let answer = client
        .iq(push_enable(COMPONENT, node, secret))
        .await
        .unwrap();
    assert_eq!(
        stanza_type(&answer),
        "result",
        "enable refused: {}\n{}",
        String::from(&answer),
        server.log_tail(30)
    );
}

/// Another user's chat message to `to`'s bare JID: `to` is offline, so the server stores it
/// and publishes to the push component.
async fn message_to(sender: &C2sClient, to: &str) -> Instant {
    let sent = Instant::now();
    sender
        .send(stanza::chat_message(
            &format!("{to}@{DOMAIN}"),
            "are you there?",
        ))
        .await
        .unwrap();
    sent
}

async fn wait_for_log(server: &XmppServer, pushgate: &Pushgate, marker: &str, before: usize) {
    let seen = e2e::wait_until(STEP, || server.log_count(marker) > before).await;
    assert!(
        seen.is_some(),
        "{:?} never logged {marker:?}\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.kind(),
        server.log_tail(60),
        pushgate.log()
    );
    let log = server.log();
    let line = log.lines().rev().find(|line| line.contains(marker));
    pushgate_testkit::interop::notice(&format!(
        "{:?} logged: {}",
        server.kind(),
        line.unwrap_or_default().trim()
    ));
}

async fn app_server_end_to_end(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "bob", "carol", "dave"]).await
    else {
        return;
    };
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
    let started = Instant::now();
    let mut pushgate = Pushgate::start(options).await;
    e2e::measured(test, "pushgate start to link up", started.elapsed());

    // 1. Conversations on bind: register, enable, then the app goes away.
    let alice = server.login("alice", "phone").await;
    let first = register(&alice, "fcm-token-1", ANDROID_ID).await;
    enable(&server, &alice, &first.node, &first.secret).await;
    alice.close().await.unwrap();

    let bob = server.login("bob", "desktop").await;
    let sent = message_to(&bob, "alice").await;
    let woke = e2e::wait_until(STEP, || fcm.accepted_count() >= 1).await;
    assert!(
        woke.is_some(),
        "no wake-up reached FCM\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
    e2e::measured(test, "message sent to FCM wake-up", sent.elapsed());
    let expected_account = account_fingerprint(&format!("alice@{DOMAIN}"), ANDROID_ID);
    let message = &fcm.messages()[0];
    assert_eq!(message.token, "fcm-token-1");
    assert_eq!(message.account, expected_account);
    // Nothing but the device hash goes to Google (docs/protocol.md A.2): no JID, no body.
    assert_eq!(
        message.body["message"]["data"],
        serde_json::json!({ "account": expected_account })
    );
    assert_eq!(
        message.collapse_key.as_deref(),
        Some(&expected_account[..6])
    );
    assert!(
        !message.body.to_string().contains("alice@"),
        "{}",
        message.body
    );
    assert!(
        !message.body.to_string().contains("are you there"),
        "{}",
        message.body
    );

    // 2. Conversations registers on every bind: the same node and secret come back, and a
    //    refreshed FCM token only replaces the token.
    let alice = server.login("alice", "phone").await;
    let again = register(&alice, "fcm-token-1", ANDROID_ID).await;
    assert_eq!(again, first);
    let refreshed = register(&alice, "fcm-token-2", ANDROID_ID).await;
    assert_eq!(refreshed, first);
    enable(&server, &alice, &first.node, &first.secret).await;
    alice.close().await.unwrap();

    // 3. FCM answers 503 UNAVAILABLE to every try of one wake-up: pushgate answers the
    //    publish with a `wait` error, so the server keeps the registration…
    fcm.set_default_answer(Answer::error(FcmErrorCode::Unavailable));
    let marker = kind.wait_error_marker();
    let waits_before = server.log_count(marker);
    let sends_before = fcm.send_requests();
    let sent = message_to(&bob, "alice").await;
    wait_for_log(&server, &pushgate, marker, waits_before).await;
    e2e::measured(
        test,
        "message sent to `wait` error at the server (FCM 503)",
        sent.elapsed(),
    );
    assert!(fcm.send_requests() > sends_before, "FCM was tried");
    assert_eq!(fcm.accepted_count(), 1, "nothing accepted while FCM fails");
    // …and the next message still wakes the phone, on the refreshed token.
    fcm.set_default_answer(Answer::success());
    let sent = message_to(&bob, "alice").await;
    let woke = e2e::wait_until(STEP, || fcm.accepted_count() >= 2).await;
    assert!(
        woke.is_some(),
        "the registration did not survive FCM's 503\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
    e2e::measured(
        test,
        "message sent to FCM wake-up after a 503",
        sent.elapsed(),
    );
    let message = &fcm.messages()[1];
    assert_eq!(message.token, "fcm-token-2");
    assert_eq!(message.account, expected_account);

    // 4. A publish with the wrong secret is refused (forbidden) and nothing goes to FCM.
    let carol = server.login("carol", "phone").await;
    let carols = register(&carol, "fcm-token-carol", CAROL_ANDROID_ID).await;
    assert_ne!(carols.node, first.node);
    let mut wrong = carols.secret.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    enable(
        &server,
        &carol,
        &carols.node,
        std::str::from_utf8(&wrong).unwrap(),
    )
    .await;
    carol.close().await.unwrap();
    let marker = kind.forbidden_marker();
    let refusals_before = server.log_count(marker);
    let sends_before = fcm.send_requests();
    message_to(&bob, "carol").await;
    wait_for_log(&server, &pushgate, marker, refusals_before).await;
    assert_eq!(
        fcm.send_requests(),
        sends_before,
        "no FCM request for a wrong secret"
    );
    assert_eq!(fcm.sends_to("fcm-token-carol"), 0);

    // 5. A phone that loses its connection without closing the stream: stream management
    //    keeps the session (Prosody hibernates it, ejabberd keeps it pending), the message is
    //    queued in it, and the server publishes for the queued message.
    let mut dave = server.login("dave", "phone").await;
    dave.send(stanza::element("enable", NS_SM, &[("resume", "true")]))
        .await
        .unwrap();
    let enabled = dave
        .recv_where(|e| e.ns() == NS_SM && matches!(e.name(), "enabled" | "failed"))
        .await
        .unwrap();
    assert_eq!(enabled.name(), "enabled", "{}", String::from(&enabled));
    // Available, so a message to the bare JID goes to this session, not to offline storage.
    dave.send_presence().await.unwrap();
    dave.recv_where(|e| e.name() == "presence").await.unwrap();
    let daves = register(&dave, "fcm-token-dave", DAVE_ANDROID_ID).await;
    enable(&server, &dave, &daves.node, &daves.secret).await;
    // Acknowledge the three stanzas received since enabling (own presence, two IQ results;
    // XEP-0198 §4), so nothing is queued when the connection drops but the message below.
    dave.send(stanza::element("a", NS_SM, &[("h", "3")]))
        .await
        .unwrap();
    let marker = kind.session_kept_marker();
    let kept_before = server.log_count(marker);
    drop(dave);
    wait_for_log(&server, &pushgate, marker, kept_before).await;
    let dave_woken = || fcm.messages().iter().any(|m| m.token == "fcm-token-dave");
    assert!(
        !dave_woken(),
        "nothing was queued, so nothing was pushed yet"
    );
    let sent = message_to(&bob, "dave").await;
    let woke = e2e::wait_until(STEP, dave_woken).await;
    assert!(
        woke.is_some(),
        "no wake-up for a dropped session\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
    e2e::measured(
        test,
        "message to a dropped session to FCM wake-up",
        sent.elapsed(),
    );
    let wake = fcm
        .messages()
        .into_iter()
        .find(|m| m.token == "fcm-token-dave")
        .unwrap();
    assert_eq!(
        wake.account,
        account_fingerprint(&format!("dave@{DOMAIN}"), DAVE_ANDROID_ID)
    );

    // 6. Registrations live in pushgate's database: after a restart of pushgate the phone
    //    registered in step 1 is still woken.
    let took = pushgate.restart().await;
    e2e::measured(test, "pushgate restart (SIGTERM to link up)", took);
    let before = fcm.accepted_count();
    let sent = message_to(&bob, "alice").await;
    let woke = e2e::wait_until(STEP, || fcm.accepted_count() > before).await;
    assert!(
        woke.is_some(),
        "no wake-up after a pushgate restart\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
    e2e::measured(
        test,
        "message sent to FCM wake-up after a restart",
        sent.elapsed(),
    );
    let message = fcm.messages().pop().unwrap();
    assert_eq!(message.token, "fcm-token-2");
    assert_eq!(message.account, expected_account);

    bob.close().await.unwrap();
    let log = pushgate.log();
    for secret in [&first.secret, &carols.secret] {
        assert!(!log.contains(secret.as_str()), "a secret in pushgate's log");
    }
    for token in [
        "fcm-token-1",
        "fcm-token-2",
        "fcm-token-carol",
        "fcm-token-dave",
    ] {
        assert!(!log.contains(token), "a push token in pushgate's log");
    }
    let naming = pushgate.info_lines_naming(e2e::DOMAIN);
    assert!(naming.is_empty(), "JIDs at info level: {naming:#?}");
    assert_eq!(pushgate.stop().await, Some(0));
}
