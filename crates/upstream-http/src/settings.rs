//! How one upstream is reached: its URL, the HTTP versions allowed, the proxy, the limits.

use std::time::Duration;

use tokio_rustls::rustls::pki_types::CertificateDer;
use url::Url;

use crate::connect::proxy::ProxyEnvironment;

/// The default of [`UpstreamSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// The default of [`UpstreamSettings::max_concurrent`]: 100 streams on each of
/// [`DEFAULT_MAX_CONNECTIONS`] connections, as Google and Apple allow.
pub const DEFAULT_MAX_CONCURRENT: usize = DEFAULT_MAX_CONNECTIONS * 100;
/// The default of [`UpstreamSettings::max_body_bytes`]: push services answer in a few hundred
/// bytes, and a broken proxy in between must not make pushgate buffer without end.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Which HTTP versions may be spoken, and how the choice is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Versions {
    /// `https`: ALPN offers `h2` and `http/1.1` and the server's choice is used (none chosen
    /// means HTTP/1.1). `http`: HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3); a peer that
    /// answers the preface in HTTP/1.x or closes during it is spoken to in HTTP/1.1 from then
    /// on.
    #[default]
    Negotiate,
    /// HTTP/2 alone: ALPN offers only `h2`, h2c never falls back.
    Http2Only,
    /// HTTP/1.1 alone: ALPN offers only `http/1.1`, `http` URLs get HTTP/1.1 at once.
    Http1Only,
}

/// How each HTTP/2 connection is kept alive: a PING every `interval`, idle or not, so that
/// NATs and load balancers keep it and a dead peer is noticed before a request needs it; a
/// PING unanswered for `timeout` ends the connection (the next request opens a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// Time from one answered PING to the next PING.
    pub interval: Duration,
    /// How long a PING may go unanswered.
    pub timeout: Duration,
}

impl Default for KeepAlive {
    /// A PING every 30 s, dead after 20 s without an answer.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(20),
        }
    }
}

/// Which certificates a TLS server may present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// What the platform trusts (`rustls-platform-verifier`: on Linux the system's CA bundle).
    #[default]
    Platform,
    /// Only certificates issued by these (a private CA, a test's own).
    Only(Vec<CertificateDer<'static>>),
}

/// Everything an [`Upstream`](crate::Upstream) needs; [`UpstreamSettings::new`] gives the
/// defaults for a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Where connections go: `http` or `https`, host, port. Its path is not used; requests
    /// carry their own.
    pub base_url: Url,
    /// Which HTTP versions may be spoken.
    pub versions: Versions,
    /// An HTTP proxy for this upstream alone (`http://[user:password@]host:port`), tunnelled
    /// through with CONNECT. It wins over the environment and `NO_PROXY` does not apply to it.
    pub proxy: Option<Url>,
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, used when [`proxy`](Self::proxy) is not set.
    /// Empty by default so that a test never depends on the process environment;
    /// [`ProxyEnvironment::from_process`] reads it.
    pub proxy_environment: ProxyEnvironment,
    /// Which certificates a TLS server may present.
    pub tls_roots: TlsRoots,
    /// The most HTTP/2 connections at once. A connection carries as many requests at once as
    /// the server allows (`SETTINGS_MAX_CONCURRENT_STREAMS`); another is opened only when
    /// every open one is full.
    pub max_connections: usize,
    /// The most requests in flight at once; one beyond it waits for another to end. Over
    /// HTTP/1.1 it is also the most connections.
    pub max_concurrent: usize,
    /// The most a connection (TCP, proxy, TLS, HTTP/2 preface) may take.
    pub connect_timeout: Duration,
    /// The most one request may take, waiting for a slot and connecting included; `None`
    /// when the caller bounds the time itself (a deadline over several tries), which keeps a
    /// timer out of every request in flight.
    pub request_timeout: Option<Duration>,
    /// The most bytes read from one answer's body.
    pub max_body_bytes: usize,
    /// PINGs on HTTP/2 connections.
    pub keep_alive: KeepAlive,
    /// How long an HTTP/2 connection beyond the first, or an HTTP/1.1 connection, may carry
    /// nothing before it is closed.
    pub idle_timeout: Duration,
}

impl UpstreamSettings {
    /// The defaults for `base_url`: versions negotiated, no proxy, the platform's roots,
    /// [`DEFAULT_MAX_CONNECTIONS`], [`DEFAULT_MAX_CONCURRENT`], 10 s to connect and to answer,
    /// [`DEFAULT_MAX_BODY_BYTES`], [`KeepAlive::default`], one idle minute.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            versions: Versions::Negotiate,
            proxy: None,
            proxy_environment: ProxyEnvironment::default(),
            tls_roots: TlsRoots::Platform,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(10)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            keep_alive: KeepAlive::default(),
            idle_timeout: Duration::from_secs(60),
        }
    }
}
