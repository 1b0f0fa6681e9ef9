//! `POST /push/{token}` through the app with a real provider: docs/protocol.md A.3, the rows
//! that accept a message or refuse the request itself (201, 404, 413, 400), and discovery.

mod support;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, header};
use pushgate_core::unified_push::{EndpointKey, EndpointKeys};
use pushgate_core::{MessageStore as _, MessageStoreLimits, OwnerKey, PushDelivery};
use pushgate_up_http::{App, RateLimits, ServerConfig};
use support::http::{
    assert_created, assert_error, chunked, post, push, push_with, send, stored_bodies,
};
use support::{
    APP, Fixture, INSTANCE, MAX_TTL_SECS, NOW, OWNER, endpoint_config, generous, server_config,
};

#[tokio::test]
async fn a_delivered_message_gets_201_with_location_and_ttl() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let answer = send(&router, push(&token, b"hello")).await;
    assert_created(&answer, MAX_TTL_SECS);
    assert_eq!(
        f.client.received(),
        vec![(OWNER.into(), APP.into(), INSTANCE.into(), b"hello".to_vec())]
    );
    // The request's TTL is what the answer says, under the cap.
    let short = send(&router, push_with(&token, &[("TTL", "60")], b"x")).await;
    assert_created(&short, 60);
    assert_ne!(
        answer.header("location"),
        short.header("location"),
        "each message has its own resource"
    );
    assert!(stored_bodies(&f).await.is_empty(), "nothing kept");
}

#[tokio::test]
async fn a_body_that_arrives_in_one_piece_reaches_the_client_uncopied() {
    let f = Fixture::new();
    let router = f.default_router();
    // Shared, as the server's read buffer is: taking it as a `Vec` would copy it.
    let body = Bytes::from(vec![0xfb_u8; 3000]);
    let request = post(&f.register())
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.clone()))
        .expect("request");
    assert_created(&send(&router, request).await, MAX_TTL_SECS);
    assert_eq!(f.client.body_addresses(), vec![body.as_ptr() as usize]);
    assert_eq!(f.client.received()[0].3, body);
}

#[tokio::test]
async fn the_location_resource_answers_a_clean_404() {
    let f = Fixture::new();
    let router = f.default_router();
    let answer = send(&router, push(&f.register(), b"hello")).await;
    let location = answer.header("location").expect("Location");
    let path = location.strip_prefix("https://up.example").expect("path");
    for method in ["GET", "DELETE", "POST"] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let answer = send(&router, request).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            answer.json(),
            serde_json::json!({"error": "no such message"})
        );
    }
}

#[tokio::test]
async fn an_undelivered_message_is_stored_for_at_most_the_cap() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let long = send(&router, push_with(&token, &[("TTL", "999999999")], b"one")).await;
    assert_created(&long, MAX_TTL_SECS);
    let missing = send(&router, push(&token, b"two")).await;
    assert_created(&missing, MAX_TTL_SECS);
    let short = send(&router, push_with(&token, &[("TTL", "30")], b"three")).await;
    assert_created(&short, 30);
    assert_eq!(
        stored_bodies(&f).await,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[tokio::test]
async fn ttl_zero_and_not_deliverable_is_dropped_with_ttl_0() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    f.client
        .always(PushDelivery::NotDelivered("timeout".into()));
    let answer = send(&router, push_with(&token, &[("TTL", "0")], b"now or never")).await;
    assert_created(&answer, 0);
    assert_eq!(f.client.received().len(), 1, "it was tried");
    assert!(stored_bodies(&f).await.is_empty(), "and not kept");
}

#[tokio::test]
async fn topic_and_urgency_reach_the_store() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let headers = [("Topic", "inbox"), ("Urgency", "high")];
    assert_created(
        &send(&router, push_with(&token, &headers, b"old")).await,
        MAX_TTL_SECS,
    );
    assert_created(
        &send(&router, push_with(&token, &headers, b"new")).await,
        MAX_TTL_SECS,
    );
    let stored = f
        .store
        .messages_for_owner(&OwnerKey::of_jid(OWNER), NOW, 100)
        .await
        .expect("store");
    assert_eq!(stored.len(), 1, "the newer message replaced the older");
    assert_eq!(stored[0].message.body, b"new");
    assert_eq!(stored[0].message.topic.as_deref(), Some("inbox"));
    assert_eq!(stored[0].message.urgency.as_deref(), Some("high"));
}

#[tokio::test]
async fn bodies_are_relayed_byte_for_byte() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    // RFC 8291 aes128gcm: salt, record size, key id length, then ciphertext; any bytes.
    let encrypted: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let headers = [
        ("Content-Encoding", "aes128gcm"),
        ("Content-Type", "application/octet-stream"),
        (
            "Crypto-Key",
            "dh=BNoRDbb84JGm8g5Z5CFxurSqsXWJ11ItfXEWYVLE85Y7",
        ),
        ("Encryption", "salt=lngarbyKfMoi9Z75xYXmkg"),
    ];
    assert_created(
        &send(&router, push_with(&token, &headers, &encrypted)).await,
        MAX_TTL_SECS,
    );
    // UnifiedPush sends an empty message as an empty body.
    assert_created(&send(&router, push(&token, b"")).await, MAX_TTL_SECS);
    let streamed = post(&token).body(chunked(4, 1024)).expect("request");
    assert_created(&send(&router, streamed).await, MAX_TTL_SECS);
    let bodies: Vec<Vec<u8>> = f.client.received().into_iter().map(|r| r.3).collect();
    assert_eq!(bodies, vec![encrypted, Vec::new(), vec![b'x'; 4096]]);
}

#[tokio::test]
async fn an_endpoint_up_issued_is_delivered_to_its_owner() {
    // From the shared vectors: a token sealed by up's Java code, valid until 2030.
    let key =
        EndpointKey::from_base64("jDfGXnfoC3JTs23VHxvhI/d8BU5VP9MEDrg4H/a0hcE=").expect("key");
    let token = "v2.local.U9fFGjjzMEJ3-srzfL7mGoZ4o70CTjQiIvTM4QULi67aLmyECJDXTy1ZzQtFyo_b1JiH8WPkkSUTlYCN96Awm6Q633yBmgXY29C8iCXUxQDvpVlzN4q22bYb8Zwj6XPhy6UeWg35o7GoW9j3YOHJOipHcGtLWy2Zyokja_T1eREvPJJDM-amyshML-2iAfI5ONLKagT9cOPOxk3itby18JySykHLBclLon6bzN_lhoZN4_lvdqwiJWUUPhGEgFntFht4R6DBq_Q_Z_7a6DIzhRAFonTUpwe6UN7HqZhFsmBYQg";
    let f = Fixture::with(
        EndpointKeys::single(key),
        MessageStoreLimits {
            max_per_owner: 10,
            max_total: 10,
        },
    );
    let answer = send(&f.default_router(), push(token, b"from up")).await;
    assert_created(&answer, MAX_TTL_SECS);
    assert_eq!(
        f.client.received(),
        vec![(
            "user0@example.com/Conversations.r4nD0".into(),
            "WFekBFu55IP9GVrRSABOPfUaPVqPjQiP/fb++/tnIoE=".into(),
            "sK07IR4sINoILr9r09PQSQqOA2w8ooFUwJyjcuKhD3o=".into(),
            b"from up".to_vec()
        )]
    );
}

#[tokio::test]
async fn unknown_foreign_and_expired_endpoints_get_404() {
    let f = Fixture::new();
    let router = f.default_router();
    let foreign = Fixture::new().register();
    let long = format!("v2.local.{}", "A".repeat(5000));
    for token in [
        "abc",
        "v2.local.AAAA",
        "v2.local.",
        "%FF%FE",
        "v2.local.%00",
        long.as_str(),
        foreign.as_str(),
    ] {
        let answer = send(&router, push(token, b"x")).await;
        assert_error(&answer, StatusCode::NOT_FOUND);
    }
    let token = f.register();
    assert_eq!(
        send(&router, push(&token, b"x")).await.status,
        StatusCode::CREATED
    );
    f.clock.advance(7 * 86_400_000);
    assert_error(
        &send(&router, push(&token, b"x")).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        f.client.received().len(),
        1,
        "only the valid push reached the client"
    );
}

#[tokio::test]
async fn a_revoked_endpoint_gets_404_from_then_on() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    f.client.then(PushDelivery::Revoked);
    assert_error(
        &send(&router, push(&token, b"x")).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &send(&router, push(&token, b"y")).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        f.client.received().len(),
        1,
        "the client is not asked again"
    );
    let other = f.register();
    assert_eq!(
        send(&router, push(&other, b"z")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_body_over_4096_bytes_gets_413_by_length_or_by_stream() {
    let f = Fixture::new();
    let router = f.default_router();
    assert_refused_past(&f, &router, 4096).await;
}

/// A body one byte past `cap` gets 413 whether its length is declared or it is streamed (the
/// read stops past the cap), and nothing reaches the client.
async fn assert_refused_past(f: &Fixture, router: &App, cap: usize) {
    let token = f.register();
    let declared = send(router, push(&token, &vec![b'a'; cap + 1])).await;
    assert_error(&declared, StatusCode::PAYLOAD_TOO_LARGE);
    let streamed = post(&token)
        .body(chunked(cap / 241 + 1, 241))
        .expect("request");
    assert_error(&send(router, streamed).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(f.client.received().is_empty(), "nothing was relayed");
}

#[tokio::test]
async fn a_push_is_held_to_the_servers_body_cap_and_deadline() {
    let f = Fixture::new();
    let server = ServerConfig {
        max_body_bytes: 1000,
        request_timeout: Duration::from_millis(100),
        ..server_config()
    };
    let router = f.router_under(
        endpoint_config(RateLimits {
            per_endpoint: generous(),
            per_client: generous(),
        }),
        &server,
    );
    assert_refused_past(&f, &router, 1000).await;
    let token = f.register();
    assert_created(
        &send(&router, push(&token, &[b'a'; 1000])).await,
        MAX_TTL_SECS,
    );

    f.client.go_silent();
    let late = send(&router, push(&token, b"x")).await;
    assert_error(&late, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(late.retry_after(), 1);
}

#[tokio::test]
async fn a_token_written_with_percent_escapes_is_the_same_endpoint() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let escaped = token.replacen("v2.local.", "v2%2Elocal%2E", 1);
    assert_created(&send(&router, push(&escaped, b"hi")).await, MAX_TTL_SECS);
    assert_eq!(
        f.client.received(),
        vec![(OWNER.into(), APP.into(), INSTANCE.into(), b"hi".to_vec())]
    );
}

#[tokio::test]
async fn bad_headers_get_400() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let cases: [(&str, &[u8]); 9] = [
        ("TTL", b"-1"),
        ("TTL", b"soon"),
        ("TTL", b"1.5"),
        ("TTL", b"\xff"),
        ("Topic", b"has space"),
        ("Topic", b"abcdefghijklmnopqrstuvwxyz0123456"),
        ("Topic", b"caf\xc3\xa9"),
        ("Urgency", b"urgent"),
        ("Urgency", b"\x80\x81"),
    ];
    for (name, value) in cases {
        let mut request = push(&token, b"x");
        request
            .headers_mut()
            .insert(name, HeaderValue::from_bytes(value).expect("header value"));
        let answer = send(&router, request).await;
        assert_error(&answer, StatusCode::BAD_REQUEST);
        let message = answer.json()["error"].as_str().expect("text").to_owned();
        assert!(message.contains(name), "{name}: {message}");
    }
    assert!(f.client.received().is_empty());
}

#[tokio::test]
async fn discovery_answers_for_valid_and_invalid_tokens() {
    let f = Fixture::new();
    let router = f.default_router();
    for token in [f.register(), "nonsense".to_owned()] {
        let request = Request::get(format!("/push/{token}"))
            .body(Body::empty())
            .expect("request");
        let answer = send(&router, request).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.json(),
            serde_json::json!({"unifiedpush": {"version": 1}})
        );
    }
}

#[tokio::test]
async fn odd_input_gets_an_answer_never_a_panic() {
    let f = Fixture::new();
    let router = f.default_router();
    let token = f.register();
    let huge = "9".repeat(64 * 1024);
    let mut odd = push(&token, b"x");
    for (name, value) in [
        ("ttl", huge.as_bytes()),
        ("x-weird", b"\xff\x80\t ok".as_slice()),
        ("content-encoding", b"\xc3\x28"),
    ] {
        let value = HeaderValue::from_bytes(value).expect("a value hyper would pass on");
        odd.headers_mut().append(name, value);
    }
    let answer = send(&router, odd).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "a huge TTL is clamped to the cap"
    );
    assert_eq!(
        answer.header("ttl"),
        Some(MAX_TTL_SECS.to_string().as_str())
    );
    for path in [
        "/push/..%2F..%2Fetc",
        "/push/v2.local.%E2%80%AE",
        "/push/%",
        "/push/v2.local.a%2Fb",
        "/push/%C0%80",
    ] {
        let request = Request::post(path).body(Body::empty()).expect("request");
        let answer = send(&router, request).await;
        assert_error(&answer, StatusCode::NOT_FOUND);
    }
    // Two TTL headers: the first counts.
    let twice = push_with(&token, &[("TTL", "5"), ("TTL", "7")], b"x");
    assert_created(&send(&router, twice).await, 5);
}
