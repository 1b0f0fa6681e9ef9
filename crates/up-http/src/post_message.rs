//! `POST /push/{token}`: one push message (RFC 8030 §5, docs/protocol.md A.3). The provider
//! decides what becomes of it; this maps its headers in and the outcome out.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::BoxError;
use axum::body::{Bytes, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use pushgate_core::provider::{
    AcceptOutcome, HeaderError, IncomingMessage, Topic, Urgency, parse_ttl,
};
use pushgate_core::unified_push::MAX_TOKEN_LEN;

use crate::client_address::client_key;
use crate::errors::json_error;
use crate::push::{PushEndpoint, UP_MAX_MESSAGE_BYTES};
use crate::rate_limit::retry_after_secs;

/// PASETO v2.local, the only kind of endpoint token there is (docs/protocol.md A.3).
const TOKEN_PREFIX: &str = "v2.local.";

/// `Retry-After` when the owner has too many undelivered messages: they wait for the client
/// to come online, which a quick retry does not hasten.
const OWNER_FULL_RETRY_AFTER_SECS: u64 = 60;

/// `Retry-After` when the store is full or down: usually brief.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 10;

/// `POST /push/{token}` through the router (a token with percent-escapes comes this way).
pub(crate) async fn post_message(
    State(endpoint): State<Arc<PushEndpoint>>,
    token: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let token = token.ok().map(|Path(token)| token);
    accept_push(&endpoint, peer, &parts.headers, token.as_deref(), body).await
}

/// One push message to `token` (`None`: the path held none), from the client at `peer`.
pub(crate) async fn accept_push<B>(
    endpoint: &PushEndpoint,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    token: Option<&str>,
    body: B,
) -> Response
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // The per-client limit comes first: it is the one that protects everything after it.
    let client = client_key(headers, peer, endpoint.trust_forwarded_for);
    if let Err(wait) = endpoint.per_client.check(&client) {
        tracing::debug!("push refused: over the per-client rate");
        pushgate_core::metric_handles::LOAD_SHED.increment("rate_limited_client", 1);
        return too_many_requests(wait);
    }
    let headers = match message_headers(headers) {
        Ok(message) => message,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    // A path that is not even shaped like a token is answered at once, before it takes a slot
    // in the per-endpoint limiter; the provider judges everything else.
    let token = match token {
        Some(token) if token.len() <= MAX_TOKEN_LEN && token.starts_with(TOKEN_PREFIX) => token,
        _ => return no_such_endpoint(),
    };
    if let Err(wait) = endpoint.per_endpoint.check(&endpoint.endpoint_key(token)) {
        tracing::debug!("push refused: over the per-endpoint rate");
        pushgate_core::metric_handles::LOAD_SHED.increment("rate_limited_endpoint", 1);
        return too_many_requests(wait);
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    crate::metrics::push_body(body.len());
    let message = IncomingMessage {
        body: &body,
        ..headers
    };
    let outcome = endpoint.provider.accept(token, message).await;
    answer(outcome, &endpoint.message_url_prefix)
}

/// `TTL` (RFC 8030 §5.2; missing means the provider's maximum), `Topic` (§5.4) and `Urgency`
/// (§5.3). `Content-Encoding` (RFC 8291 `aes128gcm`) and the older draft's `Crypto-Key` and
/// `Encryption` need nothing: the body is relayed as it came. The body is read later.
fn message_headers(headers: &HeaderMap) -> Result<IncomingMessage<'static>, HeaderError> {
    let ttl_secs = headers
        .get("ttl")
        .map(|value| value.to_str().map_err(|_| HeaderError::BadTtl))
        .transpose()?
        .map(parse_ttl)
        .transpose()?;
    let topic = headers
        .get("topic")
        .map(|value| value.to_str().map_err(|_| HeaderError::BadTopic))
        .transpose()?
        .map(Topic::parse)
        .transpose()?;
    let urgency = headers
        .get("urgency")
        .map(|value| value.to_str().map_err(|_| HeaderError::BadUrgency))
        .transpose()?
        .map(Urgency::parse)
        .transpose()?;
    Ok(IncomingMessage {
        body: &[],
        ttl_secs,
        topic,
        urgency,
    })
}

/// The whole body, at most [`UP_MAX_MESSAGE_BYTES`]: 413 as soon as it runs past that. A body
/// that arrived in one piece is not copied.
async fn read_body<B>(body: B) -> Result<Bytes, Response>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, UP_MAX_MESSAGE_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
            while let Some(current) = cause {
                if current.is::<LengthLimitError>() {
                    return Err(json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
                cause = current.source();
            }
            tracing::debug!(%error, "push: reading the body failed");
            Err(json_error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            ))
        }
    }
}

/// The answer for each outcome (docs/protocol.md A.3 table).
fn answer(outcome: AcceptOutcome, message_url_prefix: &str) -> Response {
    match outcome {
        AcceptOutcome::Delivered { ttl_secs } | AcceptOutcome::Stored { ttl_secs } => {
            created(message_url_prefix, ttl_secs)
        }
        // RFC 8030 §5.2: TTL 0 says the message was not kept.
        AcceptOutcome::Dropped => created(message_url_prefix, 0),
        AcceptOutcome::NotFound => no_such_endpoint(),
        AcceptOutcome::OwnerFull => with_retry_after(
            json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many undelivered messages for this endpoint's owner",
            ),
            OWNER_FULL_RETRY_AFTER_SECS,
        ),
        AcceptOutcome::Unavailable => with_retry_after(
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the message cannot be accepted now",
            ),
            UNAVAILABLE_RETRY_AFTER_SECS,
        ),
    }
}

/// 201 with an empty body, `Location` naming the push message resource and `TTL` saying how
/// long it is kept (RFC 8030 §5, §5.2).
fn created(message_url_prefix: &str, ttl_secs: u32) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let mut location = String::with_capacity(message_url_prefix.len() + 32);
    location.push_str(message_url_prefix);
    // 128 random bits: unique without coordination between instances, and says nothing about
    // how many messages came before.
    let _ = write!(location, "{:032x}", rand::random::<u128>());
    let headers = response.headers_mut();
    // The prefix was checked when the routes were built, and hex digits are always valid.
    if let Ok(location) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert("ttl", HeaderValue::from(ttl_secs));
    response
}

fn no_such_endpoint() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such endpoint")
}

fn too_many_requests(wait: Duration) -> Response {
    with_retry_after(
        json_error(StatusCode::TOO_MANY_REQUESTS, "too many requests"),
        retry_after_secs(wait),
    )
}

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}
