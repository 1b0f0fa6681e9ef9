//! The Matrix Push Gateway end to end, against a real Synapse and a real Prosody: a client
//! playing Conversations as distributor gets an endpoint; a Matrix user's HTTP pusher (as
//! Element sets it) names that endpoint and pushgate's gateway; another user's message makes
//! Synapse notify the gateway, and the client gets the notification as a `<push/>`. When the
//! client revokes the endpoint, the gateway rejects the pushkey and Synapse deletes the pusher.
//!
//! Skipped with a printed reason when Synapse or Prosody is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::Duration;

use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{Element, iq_result_to};
use pushgate_testkit::conversations::{
    UpPushIq, decode_push_content, directed_presence, iq_error_to, read_up_push,
    read_up_registered, up_hash, up_register,
};
use pushgate_testkit::interop::{notice, start_or_skip};
use pushgate_testkit::synapse::{SynapseInstance, SynapseOptions};
use serde_json::Value;

const ACCOUNT_UUID: &str = "0b0e2f5c-5a77-4f1e-9d0c-6e6174726978";
const RESOURCE: &str = "Conversations.matrix";
/// How long any one awaited event may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

async fn next_push(client: &mut C2sClient) -> (Element, UpPushIq) {
    let stanza = tokio::time::timeout(
        STEP,
        client.recv_where(|stanza| read_up_push(stanza).is_some()),
    )
    .await
    .unwrap_or_else(|_| panic!("no push within {STEP:?}"))
    .unwrap_or_else(|error| panic!("no push arrived: {error}"));
    let push = read_up_push(&stanza).unwrap();
    (stanza, push)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synapse_notification_reaches_conversations_and_a_revoked_pusher_is_deleted() {
    let test = "a_synapse_notification_reaches_conversations_and_a_revoked_pusher_is_deleted";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let Some(synapse) = start_or_skip(
        test,
        SynapseInstance::start(SynapseOptions::default()).await,
    ) else {
        return;
    };
    notice(&format!(
        "{test}: Synapse ready in {} ms",
        synapse.started_in().as_millis()
    ));
    let pushgate = Pushgate::start(PushgateOptions::new(server.component_port())).await;

    // 1. Conversations, as distributor for Element, registers an app instance.
    let mut client = server.login("alice", RESOURCE).await;
    client.send_presence().await.unwrap();
    client.send(directed_presence(COMPONENT)).await.unwrap();
    let application = up_hash(ACCOUNT_UUID, "im.vector.app");
    let instance = up_hash(ACCOUNT_UUID, "element-token");
    let answer = client
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;

    // 2. Element checks for a gateway at the endpoint's origin, then sets its pusher.
    let gateway = format!("{}/_matrix/push/v1/notify", pushgate.public_url());
    let discovery = http_get(&gateway).await;
    assert_eq!(discovery["unifiedpush"]["gateway"], "matrix", "{discovery}");
    let alice = synapse.register_user("alice", "alicepass").await.unwrap();
    let bob = synapse.register_user("bob", "bobpass").await.unwrap();
    let room = synapse.create_direct_room(&bob, &alice).await.unwrap();
    synapse
        .set_http_pusher(&alice, &endpoint, &gateway, Some("event_id_only"))
        .await
        .unwrap();

    // 3. Bob writes; Synapse notifies the gateway; the client gets the notification.
    let event_id = synapse
        .send_text(&bob, &room, "are you there?")
        .await
        .unwrap();
    let (stanza, push) = next_push(&mut client).await;
    assert_eq!(push.from, COMPONENT);
    assert_eq!(
        (push.application.as_str(), push.instance.as_str()),
        (application.as_str(), instance.as_str())
    );
    client.send(iq_result_to(&stanza)).await.unwrap();
    let body = decode_push_content(&push.content).unwrap();
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        message["notification"]["event_id"],
        event_id.as_str(),
        "{message}"
    );
    assert_eq!(
        message["notification"]["room_id"],
        room.as_str(),
        "{message}"
    );
    assert!(
        message["notification"].get("devices").is_none(),
        "the pushkeys stay private: {message}"
    );

    // 4. The app is gone from the phone: the client answers item-not-found, pushgate revokes
    //    the endpoint, the gateway rejects the pushkey, and Synapse deletes the pusher.
    synapse
        .send_text(&bob, &room, "still there?")
        .await
        .unwrap();
    let (stanza, _) = next_push(&mut client).await;
    client
        .send(iq_error_to(&stanza, "cancel", "item-not-found"))
        .await
        .unwrap();
    synapse.send_text(&bob, &room, "hello?").await.unwrap();
    let mut deleted = false;
    for _ in 0..200 {
        if synapse.pushers(&alice).await.unwrap().is_empty() {
            deleted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        deleted,
        "Synapse kept the pusher\n--- synapse ---\n{}\n--- pushgate ---\n{}",
        synapse.log_tail(40),
        pushgate.log()
    );
    let log = synapse.log();
    let line = log
        .lines()
        .find(|line| line.contains("was rejected: removing"))
        .unwrap_or_else(|| {
            panic!(
                "Synapse did not log the rejection\n{}",
                synapse.log_tail(40)
            )
        });
    notice(&format!("Synapse logged: {}", line.trim()));
    let log = pushgate.log();
    assert!(!log.contains(&endpoint), "an endpoint in pushgate's log");
    let naming = pushgate.info_lines_naming(e2e::DOMAIN);
    assert!(naming.is_empty(), "JIDs at info level: {naming:#?}");
}

async fn http_get(url: &str) -> Value {
    let (address, path) = e2e::http::split_url(url);
    let response = e2e::http::request(address, "GET", &path, &[], b"", STEP)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}
