//! iOS end to end, against real Prosody and real ejabberd, with a fake APNs that checks what
//! Apple checks (the ES256 provider token, the headers, the payload):
//!
//! - p2's path: an iPhone registers with `register-push-apns`, enables push, goes offline, and
//!   a message wakes it; Apple's `503` storm is answered `wait` (the registration survives and
//!   the next message still wakes it) and `410 Unregistered` `item-not-found` (ejabberd drops
//!   the registration);
//! - Monal's path (fpush's protocol): no registration, the node is the token and `pushModule`
//!   picks the app, `-sandbox` its sandbox; an unknown module is `item-not-found`;
//! - two apps behind one process, each reaching its own FCM project and APNs topic.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::path::Path;
use std::time::Duration;

use e2e::{COMPONENT, COMPONENT_SECRET, DOMAIN, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::conversations::{
    account_fingerprint, monal_push_enable, push_enable, read_push_registration,
    register_push_apns, register_push_fcm,
};
use pushgate_testkit::fake_apns::{
    ApnsAnswer, ApnsRequest, FAKE_KEY_ID, FAKE_TEAM_ID, FAKE_TOPIC, FakeApns,
};
use pushgate_testkit::fake_fcm::FakeFcm;

/// How long any one awaited event may take before the test fails.
const STEP: Duration = Duration::from_secs(15);
/// The second app's component.
const QUICKSY_COMPONENT: &str = "push2.example.test";
const QUICKSY_TOPIC: &str = "im.quicksy.fake";
/// APNs device tokens: 32 bytes, lowercase hex, as iOS hands them out.
const ALICE_TOKEN: &str = "a11ce00000000000000000000000000000000000000000000000000000000001";
const CAROL_TOKEN: &str = "ca501000000000000000000000000000000000000000000000000000000000c3";
const DAVE_TOKEN: &str = "da7e0000000000000000000000000000000000000000000000000000000000d4";
const IPHONE_ID: &str = "5f2e9c3a-iphone";

/// The `[apns]` lines of a section (or an `apns` sub-table) for `fake`.
fn apns_lines(fake: &FakeApns, key_file: &Path, topic: &str) -> String {
    format!(
        "key_file = \"{}\"\nkey_id = \"{FAKE_KEY_ID}\"\nteam_id = \"{FAKE_TEAM_ID}\"\n\
         topic = \"{topic}\"\napi_url = \"{}\"\nrequest_deadline = \"3s\"\n",
        key_file.display(),
        fake.base_url()
    )
}

/// The XEP-0357 `enable` to the account's own server; it must accept it.
async fn enable(server: &XmppServer, client: &C2sClient, enable: stanza::Element) {
    let answer = client.iq(enable).await.unwrap();
    assert_eq!(
        stanza_type(&answer),
        "result",
        "enable refused: {}\n{}",
        String::from(&answer),
        server.log_tail(30)
    );
}

/// `user` registers through `component` with `command` (p2's `register-push-fcm` or
/// `-apns`), enables push with what came back, and goes away; the registration.
async fn register_enable_and_leave(
    server: &XmppServer,
    user: &str,
    component: &str,
    command: stanza::Element,
) -> pushgate_testkit::conversations::PushRegistration {
    let client = server.login(user, "phone").await;
    let answer = client.iq(command).await.unwrap();
    let registration = read_push_registration(&answer, component).unwrap();
    enable(
        server,
        &client,
        push_enable(component, &registration.node, &registration.secret),
    )
    .await;
    client.close().await.unwrap();
    registration
}

async fn message_to(sender: &C2sClient, to: &str) {
    sender
        .send(stanza::chat_message(
            &format!("{to}@{DOMAIN}"),
            "are you there?",
        ))
        .await
        .unwrap();
}

async fn wait_for(
    what: &str,
    server: &XmppServer,
    pushgate: &Pushgate,
    done: impl FnMut() -> bool,
) {
    let seen = e2e::wait_until(STEP, done).await;
    assert!(
        seen.is_some(),
        "{what}\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
}

async fn wait_for_log(server: &XmppServer, pushgate: &Pushgate, marker: &str, before: usize) {
    wait_for(
        &format!("{:?} never logged {marker:?}", server.kind()),
        server,
        pushgate,
        || server.log_count(marker) > before,
    )
    .await;
}

/// What a server logs when the app server answered a publish `item-not-found` (cancel):
/// Prosody counts the error, ejabberd drops the registration.
fn dead_marker(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Prosody => "Got error <cancel:item-not-found",
        ServerKind::Ejabberd => "disabling push: item-not-found (cancel)",
    }
}

/// The alert push pushgate sends by default: generic, mutable, nothing about the message.
fn assert_alert_push(request: &ApnsRequest, topic: &str) {
    let jwt = request.jwt.as_ref().expect("a provider token");
    assert_eq!(
        (jwt.kid.as_str(), jwt.iss.as_str()),
        (FAKE_KEY_ID, FAKE_TEAM_ID)
    );
    assert_eq!(jwt.alg, "ES256");
    assert_eq!(request.topic.as_deref(), Some(topic));
    assert_eq!(request.push_type.as_deref(), Some("alert"));
    assert_eq!(request.priority.as_deref(), Some("10"));
    assert_eq!(
        request.json,
        Some(serde_json::json!({"aps": {
            "alert": {"title": "New message"}, "mutable-content": 1, "sound": "default"
        }}))
    );
    let body = String::from_utf8_lossy(&request.body);
    assert!(
        !body.contains(DOMAIN) && !body.contains("are you there"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iphone_registered_through_p2_s_command_is_woken_through_prosody() {
    p2_apns(
        ServerKind::Prosody,
        "an_iphone_registered_through_p2_s_command_is_woken_through_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iphone_registered_through_p2_s_command_is_woken_through_ejabberd() {
    p2_apns(
        ServerKind::Ejabberd,
        "an_iphone_registered_through_p2_s_command_is_woken_through_ejabberd",
    )
    .await;
}

async fn p2_apns(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "bob"]).await else {
        return;
    };
    let apns = FakeApns::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = FakeApns::write_key_file(keys.path()).unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.roles = vec!["app_server"];
    options.extra = format!("[apns]\n{}", apns_lines(&apns, &key_file, FAKE_TOPIC));
    let pushgate = Pushgate::start(options).await;

    // 1. The iPhone registers, enables push on its server, and goes away.
    let registration = register_enable_and_leave(
        &server,
        "alice",
        COMPONENT,
        register_push_apns(COMPONENT, ALICE_TOKEN, IPHONE_ID),
    )
    .await;

    let bob = server.login("bob", "desktop").await;
    message_to(&bob, "alice").await;
    wait_for("no push reached APNs", &server, &pushgate, || {
        apns.accepted().len() == 1
    })
    .await;
    let push = &apns.accepted()[0];
    assert_eq!(push.token, ALICE_TOKEN);
    assert_alert_push(push, FAKE_TOPIC);
    let device = account_fingerprint(&format!("alice@{DOMAIN}"), IPHONE_ID);
    assert_eq!(push.collapse_id.as_deref(), Some(&device[..6]));
    let expiration: u64 = push.expiration.as_deref().unwrap().parse().unwrap();
    assert!(expiration > 1_700_000_000, "a date: {expiration}");

    // 2. A 503 storm at Apple: `wait`, the registration survives, and once Apple is back the
    //    next message wakes the phone.
    apns.set_default_answer(ApnsAnswer::ServiceUnavailable);
    let marker = kind.wait_error_marker();
    let waits_before = server.log_count(marker);
    let tried_before = apns.requests().len();
    message_to(&bob, "alice").await;
    wait_for_log(&server, &pushgate, marker, waits_before).await;
    assert!(
        apns.requests().len() > tried_before + 1,
        "the 503s were retried"
    );
    apns.set_default_answer(ApnsAnswer::Ok);
    message_to(&bob, "alice").await;
    wait_for(
        "the registration did not survive Apple's 503s",
        &server,
        &pushgate,
        || apns.accepted().len() == 2,
    )
    .await;

    // 3. Apple says the app is gone from the phone: `item-not-found`, which ejabberd answers
    //    by dropping the registration; pushgate remembers the token as dead either way, so no
    //    later message reaches Apple.
    apns.script(
        ALICE_TOKEN,
        [ApnsAnswer::Unregistered {
            timestamp_ms: 1_700_000_000_000,
        }],
    );
    let marker = dead_marker(kind);
    let dead_before = server.log_count(marker);
    let tried_before = apns.requests().len();
    message_to(&bob, "alice").await;
    wait_for_log(&server, &pushgate, marker, dead_before).await;
    assert_eq!(
        apns.requests().len(),
        tried_before + 1,
        "a 410 is not retried"
    );
    if kind == ServerKind::Ejabberd {
        let log = server.log();
        let line = log.lines().rev().find(|line| line.contains(marker));
        pushgate_testkit::interop::notice(&format!(
            "ejabberd logged: {}",
            line.unwrap_or_default().trim()
        ));
    }
    message_to(&bob, "alice").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        apns.requests().len(),
        tried_before + 1,
        "a dead token is not sent to Apple again"
    );

    bob.close().await.unwrap();
    let log = pushgate.log();
    assert!(
        !log.contains(ALICE_TOKEN),
        "a device token in pushgate's log"
    );
    assert!(
        !log.contains(&registration.secret),
        "a secret in pushgate's log"
    );
    let naming = pushgate.info_lines_naming(DOMAIN);
    assert!(naming.is_empty(), "JIDs at info level: {naming:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monal_s_enable_wakes_with_no_registration_through_prosody() {
    monal(
        ServerKind::Prosody,
        "monal_s_enable_wakes_with_no_registration_through_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monal_s_enable_wakes_with_no_registration_through_ejabberd() {
    monal(
        ServerKind::Ejabberd,
        "monal_s_enable_wakes_with_no_registration_through_ejabberd",
    )
    .await;
}

async fn monal(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "bob", "carol", "dave"]).await
    else {
        return;
    };
    let production = FakeApns::start().await.unwrap();
    let sandbox = FakeApns::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = FakeApns::write_key_file(keys.path()).unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.roles = vec!["push_modules"];
    options.extra = format!(
        "[push_modules]\nmin_interval = \"200ms\"\n\n[[push_module]]\nname = \"monalProdiOS\"\n\
         [push_module.apns]\n{}sandbox_api_url = \"{}\"\n",
        apns_lines(&production, &key_file, FAKE_TOPIC),
        sandbox.base_url()
    );
    let pushgate = Pushgate::start(options).await;

    // 1. Monal's exact enable: the token as node, `pushModule`, nothing registered first.
    let alice = server.login("alice", "iphone").await;
    enable(
        &server,
        &alice,
        monal_push_enable(COMPONENT, ALICE_TOKEN, "monalProdiOS"),
    )
    .await;
    alice.close().await.unwrap();
    let bob = server.login("bob", "desktop").await;
    message_to(&bob, "alice").await;
    wait_for("no push reached APNs", &server, &pushgate, || {
        production.accepted().len() == 1
    })
    .await;
    let push = &production.accepted()[0];
    assert_eq!(push.token, ALICE_TOKEN);
    assert_alert_push(push, FAKE_TOPIC);
    assert_eq!(push.collapse_id, None, "a token node names no device");

    // 2. A development build says `-sandbox`: the same module's key and topic, Apple's sandbox.
    let carol = server.login("carol", "iphone").await;
    enable(
        &server,
        &carol,
        monal_push_enable(COMPONENT, CAROL_TOKEN, "monalProdiOS-sandbox"),
    )
    .await;
    carol.close().await.unwrap();
    message_to(&bob, "carol").await;
    wait_for("no push reached the sandbox", &server, &pushgate, || {
        sandbox.accepted().len() == 1
    })
    .await;
    assert_eq!(sandbox.accepted()[0].token, CAROL_TOKEN);
    assert_alert_push(&sandbox.accepted()[0], FAKE_TOPIC);
    assert!(production.requests_for(CAROL_TOKEN).is_empty());

    // 3. A module pushgate does not serve: `item-not-found`, and nothing reaches Apple.
    let dave = server.login("dave", "iphone").await;
    enable(
        &server,
        &dave,
        monal_push_enable(COMPONENT, DAVE_TOKEN, "quicksyProdiOS"),
    )
    .await;
    dave.close().await.unwrap();
    let marker = dead_marker(kind);
    let dead_before = server.log_count(marker);
    message_to(&bob, "dave").await;
    wait_for_log(&server, &pushgate, marker, dead_before).await;
    assert!(production.requests_for(DAVE_TOKEN).is_empty());
    assert!(sandbox.requests_for(DAVE_TOKEN).is_empty());

    // 4. Apple's 503s are `wait` (fpush would say `cancel`): the registration survives.
    production.set_default_answer(ApnsAnswer::ServiceUnavailable);
    let marker = kind.wait_error_marker();
    let waits_before = server.log_count(marker);
    message_to(&bob, "alice").await;
    wait_for_log(&server, &pushgate, marker, waits_before).await;
    production.set_default_answer(ApnsAnswer::Ok);
    message_to(&bob, "alice").await;
    wait_for(
        "the registration did not survive the 503s",
        &server,
        &pushgate,
        || production.accepted().len() == 2,
    )
    .await;

    bob.close().await.unwrap();
    let log = pushgate.log();
    for token in [ALICE_TOKEN, CAROL_TOKEN, DAVE_TOKEN] {
        assert!(!log.contains(token), "a device token in pushgate's log");
    }
    let naming = pushgate.info_lines_naming(DOMAIN);
    assert!(naming.is_empty(), "JIDs at info level: {naming:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_behind_one_process_reach_their_own_fcm_project_and_apns_topic() {
    let test = "two_apps_behind_one_process_reach_their_own_fcm_project_and_apns_topic";
    let Some(server) = XmppServer::start_with_components(
        ServerKind::Prosody,
        test,
        &["alice", "bob", "carol", "dave", "eve"],
        &[
            (COMPONENT, COMPONENT_SECRET),
            (QUICKSY_COMPONENT, COMPONENT_SECRET),
        ],
    )
    .await
    else {
        return;
    };
    let conversations_fcm = FakeFcm::start().await.unwrap();
    let quicksy_fcm = FakeFcm::start().await.unwrap();
    let conversations_key = conversations_fcm.write_service_account().unwrap();
    let quicksy_key = quicksy_fcm.write_service_account().unwrap();
    let apns = FakeApns::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = FakeApns::write_key_file(keys.path()).unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.roles = vec!["app_server"];
    options.fcm = Some((
        conversations_fcm.api_url(),
        conversations_key.path().to_owned(),
    ));
    options.extra = format!(
        "[apns]\n{}\n\
         [[component]]\njid = \"{QUICKSY_COMPONENT}\"\nhost = \"127.0.0.1\"\nport = {}\n\
         secret = \"{COMPONENT_SECRET}\"\nroles = [\"app_server\"]\napp = \"quicksy\"\n\
         reconnect_max = \"300ms\"\n\n\
         [[app]]\nname = \"quicksy\"\n\
         [app.fcm]\nservice_account_file = \"{}\"\napi_url = \"{}\"\nrequest_deadline = \"5s\"\n\
         [app.apns]\n{}",
        apns_lines(&apns, &key_file, FAKE_TOPIC),
        server.component_port(),
        quicksy_key.path().display(),
        quicksy_fcm.api_url(),
        apns_lines(&apns, &key_file, QUICKSY_TOPIC),
    );
    // Ready once `/health` sees both links up.
    let pushgate = Pushgate::start(options).await;

    // Each user registers with their app's component, as that app is built to.
    for (user, component, command) in [
        (
            "alice",
            COMPONENT,
            register_push_fcm(COMPONENT, "conversations-fcm-token", "android-1"),
        ),
        (
            "bob",
            QUICKSY_COMPONENT,
            register_push_fcm(QUICKSY_COMPONENT, "quicksy-fcm-token", "android-1"),
        ),
        (
            "carol",
            COMPONENT,
            register_push_apns(COMPONENT, CAROL_TOKEN, IPHONE_ID),
        ),
        (
            "dave",
            QUICKSY_COMPONENT,
            register_push_apns(QUICKSY_COMPONENT, DAVE_TOKEN, IPHONE_ID),
        ),
    ] {
        register_enable_and_leave(&server, user, component, command).await;
    }

    let eve = server.login("eve", "desktop").await;
    for user in ["alice", "bob", "carol", "dave"] {
        message_to(&eve, user).await;
    }
    wait_for("not every app woke its phone", &server, &pushgate, || {
        conversations_fcm.accepted_count() == 1
            && quicksy_fcm.accepted_count() == 1
            && apns.accepted().len() == 2
    })
    .await;
    assert_eq!(
        conversations_fcm.messages()[0].token,
        "conversations-fcm-token"
    );
    assert_eq!(quicksy_fcm.messages()[0].token, "quicksy-fcm-token");
    assert_eq!(conversations_fcm.sends_to("quicksy-fcm-token"), 0);
    assert_eq!(quicksy_fcm.sends_to("conversations-fcm-token"), 0);
    let topic_of = |token: &str| {
        let requests = apns.requests_for(token);
        assert_eq!(requests.len(), 1, "{token}");
        requests[0].topic.clone()
    };
    assert_eq!(topic_of(CAROL_TOKEN).as_deref(), Some(FAKE_TOPIC));
    assert_eq!(topic_of(DAVE_TOKEN).as_deref(), Some(QUICKSY_TOPIC));
    eve.close().await.unwrap();
}
