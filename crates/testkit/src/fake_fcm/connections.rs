//! The fake's listener: every accepted TCP connection is counted and served as HTTP/1.1 or as
//! HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3), whichever the client's first bytes say, as
//! a plain-text stand-in for Google's front end, which speaks HTTP/2 (and HTTP/1.1) over TLS.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::Shared;

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` the fake advertises: above the benchmark's 1000 in
/// flight, so one HTTP/2 connection carries them all. (hyper's own default is 200.)
pub const FAKE_MAX_CONCURRENT_STREAMS: u32 = 4096;

/// Accepts connections until the fake shuts down; each connection ends with it too.
pub(super) async fn serve(listener: TcpListener, router: Router, shared: Arc<Shared>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(FAKE_MAX_CONCURRENT_STREAMS);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // EMFILE and the like pass; the next accept may succeed.
                eprintln!("fake FCM: accept failed: {error}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = TowerToHyperService::new(router.clone());
        let stop = shared.shutdown.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                // A client that breaks off is no news to a fake.
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}
