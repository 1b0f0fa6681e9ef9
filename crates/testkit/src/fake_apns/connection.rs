//! The fake's listener and its HTTP/2 connections, driven by the `h2` server directly: each
//! connection keeps the provider token it last used (APNs judges token updates per
//! connection) and can be told to send GOAWAY after a `Shutdown` answer. Each stream is
//! handled on its own task, so requests on one connection are answered concurrently, as APNs
//! does.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::answer::Outcome;
use super::{SERVER_CERTIFICATE_PEM, SERVER_KEY_PEM, Shared, request};

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` the fake advertises: APNs advertises 1000 once a
/// connection is authenticated.
const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Bodies are kept up to this many bytes, far above APNs' limit; the rest is read and dropped.
const MAX_KEPT_BODY: usize = 64 * 1024;

/// One HTTP/2 connection's state.
pub(super) struct Connection {
    /// 1 for the first connection the fake accepted, and so on.
    pub(super) number: u64,
    /// The provider token this connection last used successfully and the fake's "now" when
    /// it first used it.
    pub(super) provider_token: Mutex<Option<(String, Duration)>>,
    /// Told when an answer asks for GOAWAY.
    goaway: Notify,
}

/// The TLS settings of [`FakeApns::start_tls`](super::FakeApns::start_tls): the test
/// certificate, ALPN `h2` only.
pub(super) fn tls_acceptor() -> std::io::Result<TlsAcceptor> {
    let invalid = |error: String| std::io::Error::new(std::io::ErrorKind::InvalidData, error);
    let chain = CertificateDer::pem_slice_iter(SERVER_CERTIFICATE_PEM)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(error.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM)
        .map_err(|error| invalid(error.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| invalid(error.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the fake shuts down; each connection ends with it too.
pub(super) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // EMFILE and the like pass; the next accept may succeed.
                eprintln!("fake APNs: accept failed: {error}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = stream.set_nodelay(true);
        let connection = Arc::new(Connection {
            number,
            provider_token: Mutex::new(None),
            goaway: Notify::new(),
        });
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        tokio::spawn(async move {
            let cancelled = shared.shutdown.clone();
            let served = async {
                match tls {
                    None => serve_http2(stream, connection, Arc::clone(&shared)).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        // APNs speaks nothing but HTTP/2.
                        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                            serve_http2(stream, connection, Arc::clone(&shared)).await;
                        }
                    }
                }
            };
            tokio::select! {
                // A client that breaks off is no news to a fake.
                () = served => {}
                () = cancelled.cancelled() => {}
            }
        });
    }
}

/// Serves one HTTP/2 connection until it ends.
async fn serve_http2<T>(io: T, connection: Arc<Connection>, shared: Arc<Shared>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(mut h2) = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .handshake::<_, Bytes>(io)
        .await
    else {
        return;
    };
    loop {
        tokio::select! {
            accepted = h2.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    tokio::spawn(handle(
                        request,
                        respond,
                        Arc::clone(&connection),
                        Arc::clone(&shared),
                    ));
                }
                // The connection ended, cleanly or not.
                Some(Err(_)) | None => return,
            },
            () = connection.goaway.notified() => h2.graceful_shutdown(),
        }
    }
}

/// A request being handled, counted for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn read_body(body: &mut RecvStream) -> Result<Bytes, h2::Error> {
    let mut kept = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let room = MAX_KEPT_BODY.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }
    Ok(kept.freeze())
}

/// Reads, judges, records and answers one stream.
async fn handle(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
) {
    let _in_flight = InFlight::enter(&shared);
    let (parts, mut body) = request.into_parts();
    let Ok(body) = read_body(&mut body).await else {
        return;
    };
    let (outcome, apns_id) = request::judge(
        &shared,
        &connection,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        body,
    );
    let delay = shared.state().delay;
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
    if outcome == Outcome::Never {
        // Until the client gives up on the stream (or the connection ends) or the fake stops.
        tokio::select! {
            _ = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {}
            () = shared.shutdown.cancelled() => {}
        }
        return;
    }
    let status = outcome.status().unwrap_or(500);
    let body = outcome.body();
    let response = Response::builder()
        .status(status)
        .header("apns-id", apns_id)
        .body(());
    let Ok(response) = response else {
        return;
    };
    let Ok(mut stream) = respond.send_response(response, body.is_none()) else {
        return;
    };
    if let Some(body) = body {
        let _ = stream.send_data(Bytes::from(body), true);
    }
    if outcome == Outcome::Shutdown {
        connection.goaway.notify_one();
    }
}
