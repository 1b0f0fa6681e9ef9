//! `POST /push/{token}` refused for now (docs/protocol.md A.3): 429 over the per-endpoint or
//! per-client rate or when the owner has too many kept messages, 503 when the store is full or
//! down; always with `Retry-After`.

mod support;

use axum::http::StatusCode;
use pushgate_core::unified_push::{EndpointKey, EndpointKeys};
use pushgate_core::{MessageStoreLimits, PushDelivery};
use pushgate_up_http::RateLimits;
use support::http::{
    assert_created, assert_error, from_peer, push, push_with, send, stored_bodies,
};
use support::{Fixture, MAX_TTL_SECS, burst_then_hourly, endpoint_config, generous};

#[tokio::test]
async fn over_the_per_endpoint_rate_gets_429_with_retry_after() {
    let f = Fixture::new();
    let router = f.router(endpoint_config(RateLimits {
        per_endpoint: burst_then_hourly(2),
        per_client: generous(),
    }));
    let token = f.register();
    for _ in 0..2 {
        assert_eq!(
            send(&router, push(&token, b"x")).await.status,
            StatusCode::CREATED
        );
    }
    let refused = send(&router, push(&token, b"x")).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        (3590..=3600).contains(&refused.retry_after()),
        "{}",
        refused.retry_after()
    );
    assert_eq!(
        f.client.received().len(),
        2,
        "the refused push was not relayed"
    );
    let other = f.register();
    assert_eq!(
        send(&router, push(&other, b"x")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn over_the_per_client_rate_gets_429_with_retry_after() {
    let f = Fixture::new();
    let router = f.router(endpoint_config(RateLimits {
        per_endpoint: generous(),
        per_client: burst_then_hourly(2),
    }));
    for _ in 0..2 {
        let request = from_peer(push(&f.register(), b"x"), "192.0.2.1:1000");
        assert_eq!(send(&router, request).await.status, StatusCode::CREATED);
    }
    // Refused before the token is looked at: a bad one gets 429 too.
    for token in [f.register(), "garbage".to_owned()] {
        let refused = send(&router, from_peer(push(&token, b"x"), "192.0.2.1:2000")).await;
        assert_error(&refused, StatusCode::TOO_MANY_REQUESTS);
        assert!((3590..=3600).contains(&refused.retry_after()));
    }
    // Another client, or a forwarded-for header nobody trusts, is not this client.
    let other = from_peer(push(&f.register(), b"x"), "192.0.2.2:1000");
    assert_eq!(send(&router, other).await.status, StatusCode::CREATED);
    let spoofed = from_peer(
        push_with(&f.register(), &[("X-Forwarded-For", "198.51.100.7")], b"x"),
        "192.0.2.1:3000",
    );
    assert_eq!(
        send(&router, spoofed).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(f.client.received().len(), 3);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let f = Fixture::new();
    let mut config = endpoint_config(RateLimits {
        per_endpoint: generous(),
        per_client: burst_then_hourly(1),
    });
    config.trust_forwarded_for = true;
    let router = f.router(config);
    let proxy = "127.0.0.1:40000";
    let via = |xff: &str| {
        from_peer(
            push_with(&f.register(), &[("X-Forwarded-For", xff)], b"x"),
            proxy,
        )
    };
    assert_eq!(
        send(&router, via("198.51.100.7")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&router, via("198.51.100.8")).await.status,
        StatusCode::CREATED
    );
    // The client cannot escape by prepending its own entry: the proxy's last one counts.
    let answer = send(&router, via("203.0.113.1, 198.51.100.7")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let forwarded = from_peer(
        push_with(
            &f.register(),
            &[("Forwarded", "for=\"[2001:db8::1]:443\"")],
            b"x",
        ),
        proxy,
    );
    assert_eq!(send(&router, forwarded).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_owner_with_too_many_kept_messages_gets_429_with_retry_after() {
    let f = Fixture::with(
        EndpointKeys::single(EndpointKey::generate()),
        MessageStoreLimits {
            max_per_owner: 1,
            max_total: 100,
        },
    );
    let router = f.default_router();
    let token = f.register();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    assert_created(&send(&router, push(&token, b"kept")).await, MAX_TTL_SECS);
    let full = send(&router, push(&token, b"one too many")).await;
    assert_error(&full, StatusCode::TOO_MANY_REQUESTS);
    assert!(full.retry_after() >= 1);
    assert_eq!(stored_bodies(&f).await, vec![b"kept".to_vec()]);
}

#[tokio::test]
async fn a_full_store_or_a_database_down_gets_503_with_retry_after() {
    let f = Fixture::with(
        EndpointKeys::single(EndpointKey::generate()),
        MessageStoreLimits {
            max_per_owner: 10,
            max_total: 1,
        },
    );
    let router = f.default_router();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let first = f.register_owner("bob@example.test/a");
    assert_created(&send(&router, push(&first, b"kept")).await, MAX_TTL_SECS);
    let full = send(&router, push(&f.register(), b"no room")).await;
    assert_error(&full, StatusCode::SERVICE_UNAVAILABLE);
    assert!(full.retry_after() >= 1);

    f.store.set_unavailable(true);
    let down = send(&router, push(&f.register(), b"no database")).await;
    assert_error(&down, StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.retry_after() >= 1);
}
