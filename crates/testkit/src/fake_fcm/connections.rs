//! The fake's listener: every accepted TCP connection is counted and served as HTTP/1.1 or as
//! HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3), whichever the client's first bytes say, as
//! a plain-text stand-in for Google's front end, which speaks HTTP/2 (and HTTP/1.1) over TLS.
//! Each connection counts the sends it carries at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::Shared;

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` the fake advertises unless told otherwise
/// ([`FakeFcm::set_max_concurrent_streams`](super::FakeFcm::set_max_concurrent_streams)):
/// above the benchmark's 1000 in flight, so one HTTP/2 connection carries them all. (hyper's
/// own default is 200; Google's FCM endpoint advertises 100.)
pub const FAKE_MAX_CONCURRENT_STREAMS: u32 = 4096;

/// The sends one connection carries.
pub(super) struct ConnectionLoad {
    /// Sends in progress on this connection now.
    in_flight: AtomicUsize,
    /// Whether a send came over this connection.
    carried_sends: AtomicBool,
}

impl ConnectionLoad {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            carried_sends: AtomicBool::new(false),
        })
    }

    /// Counts a send on this connection for as long as the guard lives.
    pub(super) fn enter<'a>(&'a self, shared: &'a Shared) -> OnConnection<'a> {
        if !self.carried_sends.swap(true, Ordering::SeqCst) {
            shared.send_connections.fetch_add(1, Ordering::SeqCst);
            let open = shared.open_send_connections.fetch_add(1, Ordering::SeqCst) + 1;
            shared
                .max_open_send_connections
                .fetch_max(open, Ordering::SeqCst);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared
            .max_sends_per_connection
            .fetch_max(now, Ordering::SeqCst);
        OnConnection(self)
    }

    /// Counts the connection's end.
    fn ended(&self, shared: &Shared) {
        if self.carried_sends.load(Ordering::SeqCst) {
            shared.open_send_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A send in progress on a connection.
pub(super) struct OnConnection<'a>(&'a ConnectionLoad);

impl Drop for OnConnection<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections until the fake shuts down; each connection ends with it too.
pub(super) async fn serve(listener: TcpListener, router: Router, shared: Arc<Shared>) {
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .max_concurrent_streams(shared.max_concurrent_streams.load(Ordering::Relaxed));
        let load = ConnectionLoad::new();
        let service = TowerToHyperService::new(router.clone().layer(Extension(Arc::clone(&load))));
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                // A client that breaks off is no news to a fake.
                _ = connection => {}
                () = shared.shutdown.cancelled() => {}
            }
            load.ended(&shared);
        });
    }
}
