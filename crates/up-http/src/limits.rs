//! The limits every request runs under: a deadline for the answer and a cap on the body.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::Limited;

use crate::errors::{json_error, method_not_allowed, not_found};
use crate::push::UP_MAX_MESSAGE_BYTES;

/// How the HTTP server treats connections and requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The longest a request may take from its head being read to its answer. Past it the
    /// answer is 503 with `Retry-After`, or 408 when the handler was waiting for body bytes the
    /// client had not sent.
    pub request_timeout: Duration,
    /// The longest a client may take to send a request head, counted from when the connection
    /// begins waiting for it (when it is accepted, and after each answer): a client that sent
    /// part of a head gets 408 and the connection is closed; one that sent nothing is closed
    /// without an answer, so this is also how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// The longest a request body may go without a byte arriving while it is being read; past
    /// it the answer is 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// The largest request body accepted; larger ones get 413 without the rest being read.
    pub max_body_bytes: usize,
    /// At most this many connections are served at once. At the limit, a new connection is
    /// accepted by closing the connection idle the longest (one between requests); when none
    /// is idle, new connections wait in the backlog.
    pub max_connections: usize,
    /// At most this many connections from one client address (IPv6: one /64) at once; a
    /// further one is answered 503 with `Retry-After` and closed (64 such at a time, outside
    /// `max_connections`; more are closed unanswered). 0: no cap (behind a reverse proxy every
    /// connection comes from the proxy's address).
    pub max_connections_per_address: usize,
    /// On shutdown, how long in-flight requests may take to finish before their connections
    /// are dropped.
    pub shutdown_grace: Duration,
}

/// The default [`ServerConfig::max_connections`]: room for well over 10,000 clients.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// The default [`ServerConfig::max_connections_per_address`]: a sixty-fourth of
/// [`DEFAULT_MAX_CONNECTIONS`], so that it takes at least 64 addresses to fill the listener,
/// while a busy application server, which keeps a pool of some tens of connections, stays
/// far below it.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_body_bytes: UP_MAX_MESSAGE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `router` with a JSON 404 for unknown paths, a JSON 405 for wrong methods, the body cap and
/// the request deadline.
pub(crate) fn with_limits(router: Router, config: &ServerConfig) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(config.clone(), deadline))
        .layer(middleware::from_fn_with_state(config.clone(), cap_body))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
}

/// Refuses a body over the cap: at once by `Content-Length`, or, for a streamed body, as soon as
/// the handler reads past the cap (RFC 8030 §7.2 leaves the size to the server; 413 per RFC 9110
/// §15.5.14).
async fn cap_body(State(config): State<ServerConfig>, request: Request, next: Next) -> Response {
    if declares_too_large(request.headers(), config.max_body_bytes) {
        return too_large();
    }
    let request = request.map(|body| Body::new(Limited::new(body, config.max_body_bytes)));
    next.run(request).await
}

/// Answers 503 when the handler does not finish within the request timeout.
async fn deadline(State(config): State<ServerConfig>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => timed_out(),
    }
}

/// Whether `Content-Length` says the body is over `max_body_bytes`.
pub(crate) fn declares_too_large(headers: &HeaderMap, max_body_bytes: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > max_body_bytes as u64)
}

/// Marks the answer [`timed_out`] gives, for the server to tell it from other 503s: when the
/// handler was waiting for the client's body at the deadline, the server answers 408 instead.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeadlinePassed;

/// The answer when a request ran past its deadline.
pub(crate) fn timed_out() -> Response {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, "request timed out");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response.extensions_mut().insert(DeadlinePassed);
    response
}

pub(crate) fn too_large() -> Response {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}
