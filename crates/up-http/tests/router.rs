//! The router as a client sees it: a request in, a status and a JSON body out.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use pushgate_up_http::{Routes, ServerConfig, app};
use support::Fixture;
use tower::ServiceExt;

fn config() -> ServerConfig {
    ServerConfig {
        request_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// The push routes of a real provider (without the plumbing: `send` adds it).
fn push_routes() -> Routes {
    let fixture = Fixture::new();
    pushgate_up_http::push_routes(
        fixture.provider.clone(),
        support::endpoint_config(pushgate_up_http::RateLimits::default()),
    )
    .expect("valid configuration")
}

async fn send(
    router: impl Into<Routes>,
    request: Request<Body>,
) -> (StatusCode, serde_json::Value) {
    let response = app(router, &config())
        .oneshot(request)
        .await
        .expect("the router never fails");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&body).expect("every answer is JSON");
    (status, json)
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn get_push_answers_the_unifiedpush_discovery_for_any_token() {
    for token in [
        "anything",
        "v2.local.AAAA",
        "%00%ff",
        "x".repeat(2000).as_str(),
    ] {
        let (status, json) = send(push_routes(), get_request(&format!("/push/{token}"))).await;
        assert_eq!(status, StatusCode::OK, "token {token}");
        assert_eq!(json, serde_json::json!({"unifiedpush": {"version": 1}}));
    }
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    for path in ["/", "/push", "/push/", "/push/a/b", "/nope?x=1"] {
        let (status, json) = send(push_routes(), get_request(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "path {path}");
        assert_eq!(json, serde_json::json!({"error": "not found"}));
    }
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let request = Request::delete("/push/abc")
        .body(Body::empty())
        .expect("request");
    let (status, json) = send(push_routes(), request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json, serde_json::json!({"error": "method not allowed"}));
}

#[tokio::test]
async fn a_body_declared_over_the_cap_is_refused_with_413() {
    let body = vec![b'a'; 4097];
    let request = Request::get("/push/abc")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("request");
    let (status, json) = send(push_routes(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json, serde_json::json!({"error": "request body too large"}));
}

#[tokio::test]
async fn a_streamed_body_over_the_cap_is_refused_with_413() {
    // A handler that reads the body; the stream has no Content-Length.
    let router = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let chunks = futures_chunks(5, 1000);
    let request = Request::post("/echo").body(chunks).expect("request");
    let response = app(router, &config())
        .oneshot(request)
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_at_the_cap_is_read_whole() {
    let router = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let request = Request::post("/echo")
        .body(futures_chunks(4, 1024))
        .expect("request");
    let response = app(router, &config())
        .oneshot(request)
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"4096");
}

#[tokio::test]
async fn a_handler_past_the_deadline_gets_503_with_retry_after() {
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let response = app(router, &config())
        .oneshot(get_request("/slow"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
}

/// A body of `count` chunks of `size` bytes, sent as a stream without a length.
fn futures_chunks(count: usize, size: usize) -> Body {
    let chunks = (0..count).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size])));
    Body::from_stream(futures::stream::iter(chunks))
}
