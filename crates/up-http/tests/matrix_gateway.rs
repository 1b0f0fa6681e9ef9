//! `/_matrix/push/v1/notify` through the app with a real provider (docs/matrix-gateway.md):
//! discovery, delivery to pushgate's own endpoints inside the process, the message the client
//! gets, what is rejected and why, and every refusal of a request that is not the spec's.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use pushgate_core::PushDelivery;
use pushgate_core::matrix_gateway::MAX_MESSAGE_BYTES;
use pushgate_up_http::{MAX_NOTIFY_BYTES, RateLimits};
use serde_json::{Value, json};
use support::http::{Answer, from_peer, send, stored_bodies};
use support::{APP, Fixture, INSTANCE, OWNER, PUBLIC_URL, endpoint_config, generous, nonzero};

const NOTIFY: &str = "/_matrix/push/v1/notify";

fn notify_request(body: impl Into<Body>) -> Request<Body> {
    Request::post(NOTIFY)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

fn notify(value: &Value) -> Request<Body> {
    notify_request(value.to_string())
}

fn device(pushkey: &str) -> Value {
    json!({"app_id": "im.vector.app.android", "pushkey": pushkey, "pushkey_ts": 1700000000,
           "data": {"url": format!("{PUBLIC_URL}{NOTIFY}"), "format": "event_id_only"}})
}

fn endpoint(token: &str) -> String {
    format!("{PUBLIC_URL}/push/{token}")
}

fn assert_matrix_error(answer: &Answer, status: StatusCode, errcode: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.json()["errcode"], errcode, "{:?}", answer.body);
    assert!(answer.json()["error"].is_string());
}

#[tokio::test]
async fn discovery_says_this_is_a_matrix_gateway() {
    let f = Fixture::new();
    let answer = send(
        &f.default_router(),
        Request::get(NOTIFY).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["unifiedpush"]["gateway"], "matrix");
}

#[tokio::test]
async fn a_notify_for_an_own_endpoint_reaches_its_client_without_the_devices() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let other = f.register_owner("bob@example.test/phone");
    let body = json!({"notification": {
        "event_id": "$THIS_IS_A_FAKE_EVENT_ID", "room_id": "!room:example.org",
        "counts": {"unread": 1}, "prio": "high",
        "devices": [device(&endpoint(&token)), device(&endpoint(&other))],
    }});
    let answer = send(&router, notify(&body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"rejected": []}));
    let received = f.client.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        (&received[0].0, &received[0].1, &received[0].2),
        (&OWNER.to_owned(), &APP.to_owned(), &INSTANCE.to_owned())
    );
    let message: Value = serde_json::from_slice(&received[0].3).expect("JSON");
    assert_eq!(
        message,
        json!({"notification": {
            "event_id": "$THIS_IS_A_FAKE_EVENT_ID", "room_id": "!room:example.org",
            "counts": {"unread": 1}, "prio": "high",
        }}),
        "the other device's pushkey stays private"
    );
}

#[tokio::test]
async fn an_offline_client_s_notification_is_kept_and_low_prio_is_low_urgency() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let body = json!({"notification": {"event_id": "$e", "prio": "low",
                                       "devices": [device(&endpoint(&token))]}});
    let answer = send(&router, notify(&body)).await;
    assert_eq!(answer.json(), json!({"rejected": []}));
    let kept = stored_bodies(&f).await;
    assert_eq!(kept.len(), 1, "kept for when the client comes back");
    assert_eq!(
        serde_json::from_slice::<Value>(&kept[0]).expect("JSON"),
        json!({"notification": {"event_id": "$e", "prio": "low"}})
    );
}

#[tokio::test]
async fn foreign_unknown_revoked_and_oversized_pushkeys_are_rejected_and_nothing_is_sent() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let foreign = [
        "https://other.example/push/v2.local.abc".to_owned(),
        "https://matrix.gateway.unifiedpush.org/_matrix/push/v1/notify".to_owned(),
        format!("{PUBLIC_URL}/metrics"),
        format!("{PUBLIC_URL}/health"),
        format!("{PUBLIC_URL}/push/../metrics"),
        format!("{PUBLIC_URL}/push/{token}/x"),
        "not a url".to_owned(),
    ];
    let unknown = endpoint("v2.local.not-a-real-token");
    let mut devices: Vec<Value> = foreign.iter().map(|key| device(key)).collect();
    devices.push(device(&unknown));
    let body = json!({"notification": {"event_id": "$e", "devices": devices}});
    let answer = send(&router, notify(&body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut expected: Vec<String> = foreign.to_vec();
    expected.push(unknown);
    assert_eq!(answer.json(), json!({ "rejected": expected }));
    assert!(f.client.received().is_empty());

    // The client no longer knows the endpoint: it is revoked, and from then on rejected.
    f.client.always(PushDelivery::Revoked);
    let mine = json!({"notification": {"event_id": "$e", "devices": [device(&endpoint(&token))]}});
    let first = send(&router, notify(&mine)).await;
    assert_eq!(first.json(), json!({"rejected": [endpoint(&token)]}));
    let again = send(&router, notify(&mine)).await;
    assert_eq!(again.json(), json!({"rejected": [endpoint(&token)]}));
    assert_eq!(
        f.client.received().len(),
        1,
        "a revoked endpoint is not pushed to"
    );

    // A notification that does not fit even without its content cannot be delivered.
    let live = f.register_owner("carol@example.test/phone");
    f.client.always(PushDelivery::Delivered);
    let big = json!({"notification": {"event_id": "$e", "room_name": "r".repeat(MAX_MESSAGE_BYTES),
                                      "devices": [device(&endpoint(&live))]}});
    let answer = send(&router, notify(&big)).await;
    assert_eq!(answer.json(), json!({"rejected": [endpoint(&live)]}));
    // With only its content too large, it goes without the content.
    let content = json!({"notification": {"event_id": "$e", "content": {"body": "b".repeat(5000)},
                                          "devices": [device(&endpoint(&live))]}});
    let answer = send(&router, notify(&content)).await;
    assert_eq!(answer.json(), json!({"rejected": []}));
    let last = f.client.received().pop().expect("delivered");
    assert_eq!(
        serde_json::from_slice::<Value>(&last.3).expect("JSON"),
        json!({"notification": {"event_id": "$e"}})
    );
}

#[tokio::test]
async fn a_thousand_devices_are_answered_one_by_one_and_more_are_refused() {
    let f = Fixture::new();
    let router = f.default_router();
    let devices: Vec<Value> = (0..1000)
        .map(|n| json!({"app_id": "a", "pushkey": format!("https://x.example/{n}")}))
        .collect();
    let answer = send(
        &router,
        notify(&json!({"notification": {"devices": devices}})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json()["rejected"].as_array().map(Vec::len),
        Some(1000)
    );
    let devices: Vec<Value> = (0..1001)
        .map(|n| json!({"app_id": "a", "pushkey": n.to_string()}))
        .collect();
    let answer = send(
        &router,
        notify(&json!({"notification": {"devices": devices}})),
    )
    .await;
    assert_matrix_error(&answer, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

#[tokio::test]
async fn a_body_not_of_the_spec_s_shape_is_400_a_huge_one_413_a_wrong_method_405() {
    let f = Fixture::new();
    let router = f.default_router();
    let not_json = send(&router, notify_request("{not json")).await;
    assert_matrix_error(&not_json, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    for shape in [
        json!([]),
        json!({"notification": {}}),
        json!({"notification": {"devices": [{"app_id": "a"}]}}),
        json!({"notification": {"event_id": 7, "devices": []}}),
    ] {
        let answer = send(&router, notify(&shape)).await;
        assert_matrix_error(&answer, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    }
    let huge = format!(
        "{{\"notification\":{{\"devices\":[],\"x\":\"{}\"}}}}",
        "a".repeat(MAX_NOTIFY_BYTES)
    );
    let answer = send(&router, notify_request(huge.clone())).await;
    assert_matrix_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    // Streamed without a length, it is cut off all the same.
    let streamed = Body::from_stream(futures::stream::iter(
        huge.into_bytes()
            .chunks(1024)
            .map(|chunk| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(chunk)))
            .collect::<Vec<_>>(),
    ));
    let answer = send(&router, notify_request(streamed)).await;
    assert_matrix_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let request = Request::builder()
            .method(method)
            .uri(NOTIFY)
            .body(Body::empty())
            .expect("request");
        let answer = send(&router, request).await;
        assert_matrix_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    }
    assert!(f.client.received().is_empty());
}

#[tokio::test]
async fn only_the_per_client_limit_answers_429_with_retry_after() {
    let f = Fixture::new();
    let router = f.router(endpoint_config(RateLimits {
        per_endpoint: generous(),
        per_client: pushgate_up_http::Rate::per_second(nonzero(1), nonzero(2)),
    }));
    let token = f.register();
    let body = json!({"notification": {"event_id": "$e", "devices": [device(&endpoint(&token))]}});
    for _ in 0..2 {
        let answer = send(&router, from_peer(notify(&body), "192.0.2.7:4000")).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let limited = send(&router, from_peer(notify(&body), "192.0.2.7:4000")).await;
    assert_matrix_error(&limited, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(limited.retry_after() >= 1);
    // Another homeserver is not held up.
    let other = send(&router, from_peer(notify(&body), "198.51.100.9:4000")).await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn without_the_gateway_the_path_is_unknown() {
    let f = Fixture::new();
    let mut config = endpoint_config(RateLimits {
        per_endpoint: generous(),
        per_client: generous(),
    });
    config.matrix_gateway = None;
    let router = f.router(config);
    let answer = send(&router, notify(&json!({"notification": {"devices": []}}))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
