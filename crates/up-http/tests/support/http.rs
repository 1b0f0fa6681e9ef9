//! Requests to the push routes in-process, and what to check in their answers.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use pushgate_core::{MessageStore as _, OwnerKey};
use pushgate_up_http::App;
use tower::ServiceExt;

use super::{Fixture, NOW, OWNER};

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds")
    }
}

pub async fn send(router: &App, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router never fails");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn post(token: &str) -> axum::http::request::Builder {
    Request::post(format!("/push/{token}"))
}

pub fn push(token: &str, body: &[u8]) -> Request<Body> {
    post(token)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.to_vec()))
        .expect("request")
}

pub fn push_with(token: &str, headers: &[(&str, &str)], body: &[u8]) -> Request<Body> {
    let mut builder = post(token);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_vec())).expect("request")
}

pub fn from_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = peer.parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// The body as a stream of `count` chunks of `size` bytes, without a length.
pub fn chunked(count: usize, size: usize) -> Body {
    let chunks = (0..count).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size])));
    Body::from_stream(futures::stream::iter(chunks))
}

pub fn assert_created(answer: &Answer, ttl: u32) {
    assert_eq!(answer.status, StatusCode::CREATED);
    assert!(answer.body.is_empty(), "201 has an empty body");
    assert_eq!(answer.header("ttl"), Some(ttl.to_string().as_str()));
    let location = answer.header("location").expect("Location");
    let id = location
        .strip_prefix("https://up.example/message/")
        .expect("Location under the public URL");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{location}"
    );
}

pub fn assert_error(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status);
    assert!(
        answer.json()["error"].is_string(),
        "a JSON error: {:?}",
        answer.body
    );
}

pub async fn stored_bodies(fixture: &Fixture) -> Vec<Vec<u8>> {
    fixture
        .store
        .messages_for_owner(&OwnerKey::of_jid(OWNER), NOW, 100)
        .await
        .expect("store")
        .into_iter()
        .map(|stored| stored.message.body)
        .collect()
}
