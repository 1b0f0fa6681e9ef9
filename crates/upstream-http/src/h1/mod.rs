//! HTTP/1.1: hyper's `client::conn::http1`, one request at a time per connection, idle
//! connections kept for the next request (those idle past the idle timeout are closed when
//! a request comes or goes; no task watches them). Hyper's connection is enough here: HTTP/1.1 is the
//! fallback for relays and proxies that speak nothing else, not the path tuned for
//! throughput.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout};

use crate::connect::{Connector, Transport};
use crate::error::{ConnectFailure, UpstreamError};
use crate::metrics::Metrics;
use crate::request::UpstreamRequest;
use crate::response::UpstreamResponse;
use crate::retry_after::retry_after;

type Sender = SendRequest<Full<Bytes>>;

/// A connection waiting for its next request.
struct Idle {
    send: Sender,
    since: Instant,
}

/// The HTTP/1.1 side of an upstream.
pub(crate) struct Http1 {
    connector: Arc<Connector>,
    /// A TLS stream on which ALPN chose HTTP/1.1, opened by the HTTP/2 side.
    spare: Arc<Mutex<Option<Transport>>>,
    /// The `Host` of every request.
    host: HeaderValue,
    /// Newest last; taken from the end, so the oldest fall idle and are closed first.
    idle: Mutex<Vec<Idle>>,
    open: Arc<AtomicUsize>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_body: usize,
    metrics: Arc<Metrics>,
}

impl Http1 {
    pub(crate) fn new(
        connector: Arc<Connector>,
        spare: Arc<Mutex<Option<Transport>>>,
        host: HeaderValue,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_body: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            connector,
            spare,
            host,
            idle: Mutex::default(),
            open: Arc::new(AtomicUsize::new(0)),
            connect_timeout,
            idle_timeout,
            max_body,
            metrics,
        }
    }

    pub(crate) fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        self.idle_timeout = idle_timeout;
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The list holds no invariant a panicking holder could break halfway.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the request and reads the answer. A request that found a kept connection closed
    /// before it went out is sent on another.
    pub(crate) async fn send(
        &self,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut request = self.request(request);
        loop {
            let (mut send, kept) = match self.checkout() {
                Some(send) => (send, true),
                None => (self.connect().await?, false),
            };
            if send.ready().await.is_err() {
                if kept {
                    continue;
                }
                return Err(UpstreamError::Connection);
            }
            let response = match send.try_send_request(request).await {
                Ok(response) => response,
                Err(mut error) => match error.take_message() {
                    Some(unsent) if kept => {
                        request = unsent;
                        continue;
                    }
                    _ => {
                        tracing::debug!(error = %error.error(), "an HTTP/1.1 request failed");
                        return Err(UpstreamError::Connection);
                    }
                },
            };
            let answer = self.read(response).await;
            if answer.is_ok() {
                // Ready again once the answer was read to its end.
                self.checkin(send);
            }
            return answer;
        }
    }

    /// The request in origin form with `Host`; hyper adds `Content-Length`.
    fn request(&self, outgoing: &UpstreamRequest) -> Request<Full<Bytes>> {
        let head = &outgoing.head;
        let mut request = Request::new(Full::new(outgoing.body.clone()));
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = outgoing.wire_path();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = outgoing.wire_headers();
        request
            .headers_mut()
            .entry(HOST)
            .or_insert_with(|| self.host.clone());
        request
    }

    async fn read(
        &self,
        response: http::Response<Incoming>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let (parts, mut body) = response.into_parts();
        let status = parts.status;
        let headers = parts.headers;
        let retry_after = retry_after(&headers);
        let too_large = || UpstreamError::BodyTooLarge {
            status,
            retry_after,
            limit: self.max_body,
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(too_large());
        }
        let mut collected = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                tracing::debug!(%error, "an HTTP/1.1 answer broke off");
                UpstreamError::BodyBroken {
                    status,
                    retry_after,
                }
            })?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > self.max_body {
                    return Err(too_large());
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(UpstreamResponse {
            status,
            version: Version::HTTP_11,
            headers,
            body: collected.freeze(),
            retry_after,
        })
    }

    /// The newest kept connection still open; closes those idle too long.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle();
        let now = Instant::now();
        // Dropping a handle closes its connection.
        idle.retain(|kept| !kept.send.is_closed() && kept.since + self.idle_timeout > now);
        idle.pop().map(|kept| kept.send)
    }

    fn checkin(&self, send: Sender) {
        let mut idle = self.idle();
        let now = Instant::now();
        idle.retain(|kept| !kept.send.is_closed() && kept.since + self.idle_timeout > now);
        idle.push(Idle {
            send,
            since: Instant::now(),
        });
    }

    /// A new connection: the spare TLS stream if there is one, else a new stream.
    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let connected = timeout(self.connect_timeout, async {
            let transport = match spare {
                Some(transport) => transport,
                None => self.connector.open().await?,
            };
            match transport {
                Transport::Plain(tcp) => self.handshake(tcp).await,
                Transport::Tls(tls) => self.handshake(*tls).await,
            }
        })
        .await
        .unwrap_or(Err(ConnectFailure::TimedOut));
        self.metrics
            .connect("1.1", if connected.is_ok() { "ok" } else { "error" });
        match &connected {
            Ok(_) => tracing::debug!(tls = self.connector.is_tls(), "HTTP/1.1 connection open"),
            Err(error) => tracing::debug!(%error, "no HTTP/1.1 connection"),
        }
        Ok(connected?)
    }

    async fn handshake<T>(&self, io: T) -> Result<Sender, ConnectFailure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = http1::handshake(TokioIo::new(io)).await.map_err(|error| {
            tracing::debug!(%error, "HTTP/1.1 handshake failed");
            ConnectFailure::Http1
        })?;
        let open = Arc::clone(&self.open);
        let metrics = Arc::clone(&self.metrics);
        metrics.http1_connections(open.fetch_add(1, Ordering::Relaxed) + 1);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP/1.1 connection ended");
            }
            metrics.http1_connections(open.fetch_sub(1, Ordering::Relaxed) - 1);
        });
        Ok(send)
    }
}
