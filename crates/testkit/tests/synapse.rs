//! The Synapse driver against a real Synapse: users, a direct room, a message, and an HTTP
//! pusher whose notify reaches a listener on loopback (which shows `ip_range_whitelist`
//! works).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use pushgate_testkit::interop::{notice, start_or_skip};
use pushgate_testkit::synapse::{SynapseInstance, SynapseOptions};
use serde_json::{Value, json};

type Notifies = Arc<Mutex<Vec<Value>>>;

async fn record(State(notifies): State<Notifies>, body: String) -> axum::Json<Value> {
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    notifies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(value);
    axum::Json(json!({"rejected": []}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_pushes_a_message_to_a_gateway_on_loopback() {
    let test = "synapse_pushes_a_message_to_a_gateway_on_loopback";
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
    let notifies: Notifies = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let gateway = format!(
        "http://{}/_matrix/push/v1/notify",
        listener.local_addr().expect("address")
    );
    let app = Router::new()
        .route("/_matrix/push/v1/notify", post(record))
        .with_state(Arc::clone(&notifies));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let alice = synapse
        .register_user("alice", "alicepass")
        .await
        .expect("alice");
    let bob = synapse.register_user("bob", "bobpass").await.expect("bob");
    assert_eq!(alice.user_id, "@alice:localhost");
    let room = synapse
        .create_direct_room(&bob, &alice)
        .await
        .expect("a direct room");
    let pushkey = "https://up.example/push/v2.local.test";
    synapse
        .set_http_pusher(&alice, pushkey, &gateway, Some("event_id_only"))
        .await
        .expect("a pusher");
    assert_eq!(
        synapse.pushers(&alice).await.expect("pushers")[0]["pushkey"],
        pushkey
    );
    let event_id = synapse
        .send_text(&bob, &room, "are you there?")
        .await
        .expect("sent");

    let mut seen = None;
    for _ in 0..300 {
        let found = notifies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|notify| notify["notification"]["event_id"] == event_id.as_str())
            .cloned();
        if found.is_some() {
            seen = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notify = seen.unwrap_or_else(|| panic!("no notify\n{}", synapse.log_tail(40)));
    assert_eq!(notify["notification"]["room_id"], room.as_str());
    assert_eq!(notify["notification"]["devices"][0]["pushkey"], pushkey);
    assert!(
        notify["notification"].get("content").is_none(),
        "event_id_only: {notify}"
    );
    server.abort();
}
