//! The HTTP client pushgate's senders share (FCM now, APNs next): one [`Upstream`] per
//! service, a request in, a whole answer out ([`UpstreamResponse`]) or a typed
//! [`UpstreamError`].
//!
//! The layers, bottom up:
//! - `connect`: TCP with happy eyeballs (hyper-util's `HttpConnector`), or a tunnel through an
//!   HTTP proxy with CONNECT (hyper-util's `Tunnel`; which proxy, `NO_PROXY` included, is
//!   hand-written in `connect::proxy`), then TLS with ALPN (tokio-rustls, aws-lc-rs).
//! - `h2`: the HTTP/2 pool, hand-written on the `h2` crate (streams per connection follow the
//!   server's `SETTINGS_MAX_CONCURRENT_STREAMS`, PINGs keep connections alive, writes are
//!   coalesced); `h1`: HTTP/1.1 on hyper's `client::conn::http1`, idle connections kept.
//! - [`Upstream`]: which of the two, negotiated ([`Versions`]); the concurrency limit and the
//!   per-request deadline; `Retry-After` parsed ([`parse_retry_after`]); the body capped.
//!
//! Metrics carry a `service` label: connections and connection attempts, requests in flight,
//! their duration and their wait for a slot, resends (docs/metrics.md).

mod connect;
mod error;
mod h1;
mod h2;
mod metrics;
mod request;
mod response;
mod retry;
mod retry_after;
mod settings;
mod upstream;

pub use connect::proxy::{NoProxy, Proxy, ProxyEnvironment, ProxyError, proxy_settings};
pub use error::{ConnectFailure, UpstreamError};
pub use request::{RequestHead, UpstreamRequest};
pub use response::UpstreamResponse;
pub use retry::RetryPolicy;
pub use retry_after::parse_retry_after;
pub use settings::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONNECTIONS, KeepAlive, TlsRoots,
    UpstreamSettings, Versions,
};
pub use upstream::{Upstream, UpstreamSetupError};
