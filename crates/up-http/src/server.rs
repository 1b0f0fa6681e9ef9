//! Accepting connections and serving the routes on them until shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, Routes, app};
use crate::limits::ServerConfig;
use crate::strict_http1::{FramingRefusals, StrictHttp1, close_after, refusal};

/// Serves [`app`]`(routes, config)` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish (at most `config.shutdown_grace`) and returns once
/// every connection task has ended.
pub fn serve(
    listener: TcpListener,
    routes: impl Into<Routes>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let app = Arc::new(app(routes, &config));
    serve_app(listener, app, config, shutdown)
}

async fn serve_app(
    listener: TcpListener,
    app: Arc<App>,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));

    loop {
        // Wait for a free slot first, so a full server leaves new connections in the kernel's
        // backlog instead of accepting and then starving them.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; treat it like shutdown all the same.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tracing::trace!(%peer, "HTTP connection accepted");
        let app = Arc::clone(&app);
        let config = config.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, app, &config, &shutdown).await;
            drop(permit);
        });
    }

    // Closing the listener first makes new connection attempts fail fast during the drain.
    drop(listener);
    connections.close();
    connections.wait().await;
    tracing::debug!("HTTP server stopped");
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    config: &ServerConfig,
    shutdown: &CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // hyper accepts some requests whose framing a proxy in front could read otherwise; the
    // stream wrapper finds them and the service refuses them (see `strict_http1`).
    let refusals = FramingRefusals::new();
    let stream = StrictHttp1::new(stream, refusals.clone());
    // hyper hands requests over one at a time in the order their heads arrive, which is the
    // order the wrapper counts them in.
    let handed = AtomicU64::new(0);
    // The per-client rate limit needs the peer address.
    let service = service_fn(move |request: Request<Incoming>| {
        let index = handed.fetch_add(1, Ordering::Relaxed);
        let app = Arc::clone(&app);
        let refusals = refusals.clone();
        async move {
            if refusals.refuses(index) {
                // The body is left unread: where it ends is what is in doubt.
                return Ok::<_, Infallible>(refusal());
            }
            let mut response = app.respond(request, Some(peer)).await;
            // A fault found in this request's body while it was being answered: where the
            // next request would start is in doubt, so the connection is not reused
            // (RFC 9112 §6.3).
            if refusals.refuses(index) {
                close_after(&mut response);
            }
            Ok(response)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);

    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }

    // Shutdown: finish the request in flight (if any), then close; an idle keep-alive
    // connection closes at once.
    connection.as_mut().graceful_shutdown();
    match tokio::time::timeout(config.shutdown_grace, connection).await {
        Ok(Err(error)) => tracing::debug!(%error, "HTTP connection ended with an error"),
        Ok(Ok(())) => {}
        Err(_) => tracing::warn!("an HTTP request did not finish within the shutdown grace"),
    }
}
