//! Accepting connections and serving the router on them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::Request;
use axum::middleware;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::errors::{method_not_allowed, not_found};
use crate::limits::{ServerConfig, cap_body, deadline};

/// `router` with what every pushgate route gets: a JSON 404 for unknown paths, a JSON 405 for
/// wrong methods, the body cap and the request deadline. [`serve`] serves this; tests can call
/// it directly.
pub fn app(router: Router, config: &ServerConfig) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(config.clone(), deadline))
        .layer(middleware::from_fn_with_state(config.clone(), cap_body))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
}

/// Serves [`app`]`(router, config)` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish (at most `config.shutdown_grace`) and returns once
/// every connection task has ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let app = app(router, &config);
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
        let app = app.clone();
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
    app: Router,
    config: &ServerConfig,
    shutdown: &CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // Every request learns the peer address as axum's `ConnectInfo`, as
    // `into_make_service_with_connect_info` would give it (the per-client rate limit needs it).
    let app = app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
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
