//! Serving the requests of one accepted connection until it ends, times out, is asked to make
//! room for a new one while idle, or the server shuts down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::connection_registry::{OverAddressCap, RegisteredConnection};
use crate::connection_watch::{
    AnsweredBody, ConnectionProgress, FlushWatch, Phase, Watched, WatchedConnection,
};
use crate::errors::json_error;
use crate::limits::{DeadlinePassed, ServerConfig};
use crate::request_body::{BodyReadState, TimedBody, request_timeout};
use crate::strict_http1::{FramingRefusals, StrictHttp1, close_after, refusal};

/// hyper's own head timeout runs this much longer than ours, as a backstop for states ours
/// does not cover (a connection whose framing was refused mid-head is left to hyper).
const HYPER_HEAD_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// The longest the 408 for an unfinished head may take to be written.
const HEAD_TIMEOUT_ANSWER_DEADLINE: Duration = Duration::from_secs(1);

/// Serves `stream` from `peer` with `app` until the connection ends. `slot` is the
/// connection's place among the listener's `max_connections`; it is handed to a new
/// connection when this one is asked to close while idle.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    config: &ServerConfig,
    shutdown: &CancellationToken,
    registered: RegisteredConnection,
    slot: OwnedSemaphorePermit,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout + HYPER_HEAD_TIMEOUT_MARGIN);
    let progress = ConnectionProgress::new();
    // hyper accepts some requests whose framing a proxy in front could read otherwise; the
    // stream wrapper finds them and the service refuses them (see `strict_http1`).
    let refusals = FramingRefusals::new();
    let stream = StrictHttp1::new(stream, refusals.clone(), progress.received());
    let stream = FlushWatch::new(stream, &progress);
    // hyper hands requests over one at a time in the order their heads arrive, which is the
    // order the wrapper counts them in.
    let handed = AtomicU64::new(0);
    let body_read_timeout = config.body_read_timeout;
    let answers = progress.clone();
    // The per-client rate limit needs the peer address.
    let service = service_fn(move |request: Request<Incoming>| {
        let index = handed.fetch_add(1, Ordering::Relaxed);
        let app = Arc::clone(&app);
        let refusals = refusals.clone();
        let answers = answers.clone();
        async move {
            let response = if refusals.refuses(index) {
                // The body is left unread: where it ends is what is in doubt.
                refusal()
            } else {
                answer(&app, request, peer, body_read_timeout, &refusals, index).await
            };
            Ok::<_, Infallible>(response.map(|body| AnsweredBody::new(body, &answers)))
        }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut watched =
        WatchedConnection::new(connection, progress, registered, config.header_read_timeout);

    let close_request = watched.registered_mut().close_request();
    loop {
        tokio::select! {
            // The connection first: bytes that arrived make it busy before a request to
            // close it is looked at.
            biased;
            watched_end = &mut watched => {
                match watched_end {
                    Watched::Ended(Ok(())) => {}
                    Watched::Ended(Err(error)) => {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                    Watched::IdleTimedOut => {
                        tracing::trace!(%peer, "idle HTTP connection closed");
                    }
                    Watched::HeadTimedOut => {
                        let (connection, _registered) = watched.into_parts();
                        let io = connection.into_parts().io.into_inner();
                        answer_head_timeout(io, peer).await;
                    }
                }
                return;
            }
            () = close_request.asked() => {
                if watched.phase() == Phase::Idle {
                    tracing::trace!(%peer, "idle HTTP connection closed to make room");
                    let (connection, mut registered) = watched.into_parts();
                    drop(connection);
                    registered.hand_over(slot);
                    return;
                }
                watched.registered_mut().decline();
            }
            () = shutdown.cancelled() => break,
        }
    }

    if watched.phase() == Phase::Idle {
        // No request in progress: nothing to finish.
        return;
    }
    // Shutdown: finish the request in flight (if any), then close.
    let (mut connection, _registered) = watched.into_parts();
    std::pin::Pin::new(&mut connection).graceful_shutdown();
    match tokio::time::timeout(config.shutdown_grace, connection).await {
        Ok(Err(error)) => tracing::debug!(%error, "HTTP connection ended with an error"),
        Ok(Ok(())) => {}
        Err(_) => tracing::warn!("an HTTP request did not finish within the shutdown grace"),
    }
}

/// The app's answer to `request`, the `index`th on its connection, with its body read under
/// `body_read_timeout`. A request whose client stopped sending its body gets 408 whatever the
/// handler made of that.
async fn answer(
    app: &App,
    request: Request<Incoming>,
    peer: SocketAddr,
    body_read_timeout: Duration,
    refusals: &FramingRefusals,
    index: u64,
) -> Response {
    let body_state = BodyReadState::default();
    let request = request.map(|body| TimedBody::new(body, body_read_timeout, body_state.clone()));
    let mut response = app.respond(request, Some(peer)).await;
    let deadline_passed = response.extensions().get::<DeadlinePassed>().is_some();
    if body_state.stalled() || (deadline_passed && body_state.waiting_on_client()) {
        tracing::debug!(%peer, "the client stopped sending its request body");
        return request_timeout();
    }
    // A fault found in this request's body while it was being answered: where the next
    // request would start is in doubt, so the connection is not reused (RFC 9112 §6.3).
    if refusals.refuses(index) {
        close_after(&mut response);
    }
    response
}

/// Answers 408 on a connection whose client sent part of a request head but not the rest in
/// time, then closes it. hyper cannot: its own head timeout ends the connection without a
/// word, so the socket was taken back from it. That is safe: every earlier answer is out (the
/// connection was waiting for a head) and no request was handed to the service.
async fn answer_head_timeout<T: AsyncWrite + Unpin>(mut io: T, peer: SocketAddr) {
    tracing::debug!(%peer, "the client did not finish its request head in time");
    let body = br#"{"error":"the request did not arrive in time"}"#;
    let head = format!(
        "HTTP/1.1 408 Request Timeout\r\ndate: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        httpdate::fmt_http_date(SystemTime::now()),
        body.len(),
    );
    let written = tokio::time::timeout(HEAD_TIMEOUT_ANSWER_DEADLINE, async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(body).await?;
        io.shutdown().await
    })
    .await;
    if let Ok(Err(error)) = written {
        tracing::debug!(%error, "writing the 408 for an unfinished head failed");
    }
}

/// At most this many connections over the per-address cap are answered at once; further ones
/// are closed unanswered.
pub(crate) const REFUSALS_AT_ONCE: usize = 64;

/// The longest a connection over the per-address cap is kept: for its request head, and for
/// the 503 that answers it.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);

/// Answers the first request on `stream`, whose address already holds the most connections
/// one may, with 503 and `Retry-After` (as nginx's `limit_conn`), then closes it. The request
/// head is read first, so that the answer comes where the client expects one.
pub(crate) async fn refuse_connection(stream: TcpStream, over: OverAddressCap) {
    tracing::debug!(address = %over.address, held = over.held, "HTTP connection over the per-address cap");
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(REFUSAL_DEADLINE);
    let service =
        service_fn(|_: Request<Incoming>| async { Ok::<_, Infallible>(too_many_connections()) });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if let Ok(Err(error)) = tokio::time::timeout(REFUSAL_DEADLINE, connection).await {
        tracing::debug!(%error, "refused HTTP connection ended with an error");
    }
}

fn too_many_connections() -> Response {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many connections from this address",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    close_after(&mut response);
    response
}
