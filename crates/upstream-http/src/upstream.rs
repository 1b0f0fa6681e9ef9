//! [`Upstream`]: the requests to one service, over HTTP/2 or HTTP/1.1 as negotiated, within a
//! concurrency limit and a deadline each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tokio_rustls::rustls;

use crate::connect::Connector;
use crate::connect::proxy::{Proxy, ProxyError};
use crate::connect::tls;
use crate::error::UpstreamError;
use crate::h1::Http1;
use crate::h2::connection::Dialer;
use crate::h2::{Http2, Http2Failure};
use crate::metrics::Metrics;
use crate::request::{RequestHead, UpstreamRequest};
use crate::response::UpstreamResponse;
use crate::settings::{KeepAlive, UpstreamSettings, Versions};

/// How long an upstream that closed during the h2c preface, without saying it speaks
/// HTTP/1.1, is spoken to in HTTP/1.1 before HTTP/2 is tried again.
const RETRY_HTTP2_AFTER: Duration = Duration::from_secs(600);
/// [`Upstream::http1_until`] for an upstream that said it speaks HTTP/1.1 only.
const FOREVER: u64 = u64::MAX;

/// Why an [`Upstream`] cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    /// The base URL is not `http` or `https` with a host.
    #[error("the upstream URL {url:?} {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The proxy setting (or the environment's) cannot be used.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// TLS could not be set up (e.g. no usable root certificates).
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// A limit is zero: nothing could ever be sent.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// The connections to one upstream service and what every request to it shares.
///
/// HTTP/2 is used when the server speaks it (see [`Versions`]), every request one stream on
/// a shared connection; HTTP/1.1 otherwise, one request per connection at a time. Once the
/// server showed it speaks only HTTP/1.1 (by ALPN, or by answering the h2c preface in
/// HTTP/1.x), HTTP/1.1 is used for the life of the `Upstream`; a server that only closed
/// during the preface is spoken to in HTTP/1.1 for ten minutes, then HTTP/2 is tried again.
pub struct Upstream {
    service: &'static str,
    scheme: Scheme,
    authority: Authority,
    /// `None` when only HTTP/1.1 is allowed.
    http2: Option<Http2>,
    http1: Http1,
    /// Since when this upstream exists: the origin of [`http1_until`](Self::http1_until).
    born: Instant,
    /// Until when (ms after `born`) HTTP/1.1 is used without trying HTTP/2: 0 while HTTP/2 is
    /// tried, [`FOREVER`] once the upstream said it speaks HTTP/1.1 only.
    http1_until: AtomicU64,
    permits: Semaphore,
    request_timeout: Option<Duration>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("service", &self.service)
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("speaks_http1_only", &self.speaks_http1_only())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The upstream of `settings`; `service` labels its metrics (`fcm`, `apns`). Connects
    /// to nothing yet.
    pub fn new(
        settings: UpstreamSettings,
        service: &'static str,
    ) -> Result<Self, UpstreamSetupError> {
        let url = &settings.base_url;
        let bad_url = |reason| UpstreamSetupError::BadUrl {
            url: url.to_string(),
            reason,
        };
        if settings.max_connections == 0 {
            return Err(UpstreamSetupError::Zero("max_connections"));
        }
        if settings.max_concurrent == 0 {
            return Err(UpstreamSetupError::Zero("max_concurrent"));
        }
        let scheme = match url.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            _ => return Err(bad_url("is not http or https")),
        };
        let host = url.host_str().ok_or_else(|| bad_url("has no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let host_header =
            HeaderValue::try_from(authority.as_str()).map_err(|_| bad_url("has a bad host"))?;
        let authority =
            Authority::try_from(authority.as_str()).map_err(|_| bad_url("has a bad host"))?;
        let proxy = match &settings.proxy {
            Some(proxy) => Some(Proxy::from_url(proxy)?),
            None => settings.proxy_environment.proxy_for(url)?,
        };
        let tls = if scheme == Scheme::HTTPS {
            Some(
                tls::connector(settings.versions, &settings.tls_roots)
                    .map_err(UpstreamSetupError::Tls)?,
            )
        } else {
            None
        };
        let connector = Arc::new(
            Connector::new(url, tls, proxy, settings.connect_timeout)
                .ok_or_else(|| bad_url("cannot be connected to"))?,
        );
        let metrics = Arc::new(Metrics::new(service));
        let spare = Arc::new(Mutex::new(None));
        let http2 = (settings.versions != Versions::Http1Only).then(|| {
            Http2::new(
                Dialer {
                    connector: Arc::clone(&connector),
                    versions: settings.versions,
                    keep_alive: settings.keep_alive,
                    connect_timeout: settings.connect_timeout,
                    metrics: Arc::clone(&metrics),
                    spare: Arc::clone(&spare),
                },
                settings.max_connections,
                settings.idle_timeout,
                settings.max_body_bytes,
            )
        });
        let http1 = Http1::new(
            connector,
            spare,
            host_header,
            settings.connect_timeout,
            settings.idle_timeout,
            settings.max_body_bytes,
            Arc::clone(&metrics),
        );
        Ok(Self {
            service,
            scheme,
            authority,
            http2,
            http1,
            born: Instant::now(),
            http1_until: AtomicU64::new(0),
            permits: Semaphore::new(settings.max_concurrent.min(Semaphore::MAX_PERMITS)),
            request_timeout: settings.request_timeout,
            metrics,
        })
    }

    /// The head many requests share: `head`'s method, URI and header fields, the URI
    /// completed as [`send`](Self::send) does. Send with [`send_prepared`](Self::send_prepared).
    pub fn prepare(&self, head: Request<()>) -> Result<Arc<RequestHead>, UpstreamError> {
        let (mut parts, ()) = head.into_parts();
        if !self.complete_uri(&mut parts) {
            return Err(not_a_uri());
        }
        Ok(Arc::new(RequestHead::from_parts(parts)))
    }

    /// Sends `request` and reads the whole answer, within the concurrency limit and
    /// [`request_timeout`](UpstreamSettings::request_timeout) (the wait for a slot included).
    /// The request's URI is a path, or an absolute URI of this upstream; a path gets the
    /// upstream's scheme and authority. A sender that sends the same head again and again
    /// [`prepare`](Self::prepare)s it once instead.
    pub fn send(
        &self,
        request: Request<Bytes>,
    ) -> impl Future<Output = Result<UpstreamResponse, UpstreamError>> + Send + '_ {
        let (mut parts, body) = request.into_parts();
        let completed = self.complete_uri(&mut parts);
        let request = UpstreamRequest::new(Arc::new(RequestHead::from_parts(parts)), body);
        async move {
            if !completed {
                return Err(not_a_uri());
            }
            self.send_prepared(request).await
        }
    }

    /// Sends `request`, whose head this upstream [`prepare`](Self::prepare)d, as
    /// [`send`](Self::send) does.
    ///
    /// Not an `async fn`: its arguments would be kept twice in the future (once as captured,
    /// once moved into the body), and every request in flight holds one.
    #[allow(clippy::manual_async_fn)]
    pub fn send_prepared(
        &self,
        request: UpstreamRequest,
    ) -> impl Future<Output = Result<UpstreamResponse, UpstreamError>> + Send + '_ {
        async move {
            match self.request_timeout {
                // Boxed: a caller with a deadline of its own keeps the timer out of every
                // request in flight.
                Some(limit) => Box::pin(timeout(limit, self.send_in_time(&request)))
                    .await
                    .unwrap_or(Err(UpstreamError::TimedOut)),
                None => self.send_in_time(&request).await,
            }
        }
    }

    /// Replaces [`UpstreamSettings::keep_alive`]. Only before the first request; later, it
    /// changes nothing.
    pub fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        if let Some(http2) = &mut self.http2 {
            http2.set_keep_alive(keep_alive);
        }
    }

    /// Replaces [`UpstreamSettings::idle_timeout`]. Only before the first request; later,
    /// it changes nothing for HTTP/2.
    pub fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        if let Some(http2) = &mut self.http2 {
            http2.set_idle_timeout(idle_timeout);
        }
        self.http1.set_idle_timeout(idle_timeout);
    }

    /// Whether the upstream turned out to speak HTTP/1.1 only.
    pub fn speaks_http1_only(&self) -> bool {
        self.http2.is_none() || self.http1_for_now()
    }

    /// Whether HTTP/1.1 is used now without trying HTTP/2.
    fn http1_for_now(&self) -> bool {
        match self.http1_until.load(Ordering::Acquire) {
            0 => false,
            FOREVER => true,
            until => self.millis_since_born() < until,
        }
    }

    fn millis_since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Remembers that the upstream speaks HTTP/1.1: for good when it said so, for
    /// [`RETRY_HTTP2_AFTER`] when it only closed during the preface (perhaps a restart, not an
    /// HTTP/1.1-only server).
    fn remember_http1(&self, confirmed: bool) {
        let until = if confirmed {
            FOREVER
        } else {
            let retry = u64::try_from(RETRY_HTTP2_AFTER.as_millis()).unwrap_or(u64::MAX);
            self.millis_since_born().saturating_add(retry).max(1)
        };
        let before = self.http1_until.swap(until, Ordering::AcqRel);
        if before != until {
            tracing::info!(
                service = self.service,
                confirmed,
                "the upstream speaks HTTP/1.1; using it from now on"
            );
        }
    }

    async fn send_in_time(
        &self,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let _permit = match self.permits.try_acquire() {
            // No wait, nothing recorded: the histogram is of the waits there were.
            Ok(permit) => permit,
            // Boxed: waiting at the limit is rare and need not make every request's future
            // larger. Closed only if the semaphore were closed, which it never is.
            Err(_) => Box::pin(async {
                let asked = Instant::now();
                let permit = self.permits.acquire().await;
                self.metrics.slot_waited(asked.elapsed());
                permit
            })
            .await
            .map_err(|_| UpstreamError::Connection)?,
        };
        let _in_flight = self.metrics.request_started();
        if let Some(http2) = &self.http2
            && !self.http1_for_now()
        {
            match http2.send(request).await {
                Ok(answer) => return Ok(answer),
                Err(Http2Failure::Upstream(error)) => return Err(error),
                Err(Http2Failure::SpeaksHttp1 { confirmed }) => self.remember_http1(confirmed),
            }
        }
        // Boxed: the fallback should not make every request's future larger.
        Box::pin(self.http1.send(request)).await
    }

    /// Gives a path the upstream's scheme and authority; false if that makes no URI.
    fn complete_uri(&self, head: &mut Parts) -> bool {
        if head.uri.scheme().is_some() && head.uri.authority().is_some() {
            return true;
        }
        let mut parts = std::mem::take(&mut head.uri).into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        match Uri::from_parts(parts) {
            Ok(uri) => {
                head.uri = uri;
                true
            }
            Err(_) => false,
        }
    }
}

fn not_a_uri() -> UpstreamError {
    UpstreamError::InvalidRequest("the URI is neither a path nor absolute")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Upstream {
        let url = url::Url::parse("http://127.0.0.1:9").expect("url");
        Upstream::new(UpstreamSettings::new(url), "test").expect("upstream")
    }

    #[tokio::test]
    async fn http1_said_is_for_good_http1_guessed_from_a_close_expires() {
        let said = upstream();
        assert!(!said.speaks_http1_only());
        said.remember_http1(true);
        assert!(said.speaks_http1_only());
        assert_eq!(said.http1_until.load(Ordering::Acquire), FOREVER);

        let guessed = upstream();
        guessed.remember_http1(false);
        assert!(guessed.speaks_http1_only());
        let until = guessed.http1_until.load(Ordering::Acquire);
        let retry = u64::try_from(RETRY_HTTP2_AFTER.as_millis()).expect("ms");
        assert!(until >= retry && until < FOREVER, "{until}");
        // As if the ten minutes had passed.
        guessed.http1_until.store(1, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!guessed.speaks_http1_only());
    }
}
