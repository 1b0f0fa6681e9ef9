//! Opening a byte stream to the upstream: TCP through hyper-util's `HttpConnector` (both
//! address families, the second after a 300 ms head start of the first, RFC 8305; the connect
//! time shared out between the addresses), or a tunnel through an HTTP proxy with CONNECT
//! (hyper-util's `Tunnel`); then TLS with ALPN for `https`. Which HTTP version runs on the
//! stream is decided above this layer.

pub(crate) mod proxy;
pub(crate) mod tls;

use std::net::IpAddr;
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tower_service::Service as _;
use url::{Host, Url};

use crate::error::ConnectFailure;
use proxy::Proxy;

/// The head start of the preferred address family before the other is tried too.
const FALLBACK_DELAY: Duration = Duration::from_millis(300);

/// An open byte stream to the upstream.
pub(crate) enum Transport {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`, with what ALPN chose.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Where and how to connect, prepared once.
pub(crate) struct Connector {
    /// `scheme://host:port/`, the port always written, as the tunnel needs it.
    target: Uri,
    /// `None` for `http://`.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    proxy: Option<Proxy>,
    tcp: HttpConnector,
}

impl Connector {
    /// The connector for `url`; `tls` is used for `https://` URLs. `None` for a URL that is
    /// neither `http` nor `https` or has no host.
    pub(crate) fn new(
        url: &Url,
        tls: Option<TlsConnector>,
        proxy: Option<Proxy>,
        connect_timeout: Duration,
    ) -> Option<Self> {
        let host = url.host()?.to_owned();
        let port = url.port_or_known_default()?;
        let tls = match (url.scheme(), tls) {
            ("http", _) => None,
            ("https", Some(connector)) => {
                let name = match &host {
                    Host::Domain(domain) => ServerName::try_from(domain.clone()).ok()?,
                    Host::Ipv4(ip) => ServerName::from(IpAddr::V4(*ip)),
                    Host::Ipv6(ip) => ServerName::from(IpAddr::V6(*ip)),
                };
                Some((connector, name))
            }
            _ => return None,
        };
        let target = format!("{}://{host}:{port}/", url.scheme())
            .parse::<Uri>()
            .ok()?;
        let mut tcp = HttpConnector::new();
        // The scheme is ours to handle: TLS comes after.
        tcp.enforce_http(false);
        // Requests are small and latency matters more than packet count.
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_happy_eyeballs_timeout(Some(FALLBACK_DELAY));
        Some(Self {
            target,
            tls,
            proxy,
            tcp,
        })
    }

    /// Whether requests go out over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether connections go through a proxy.
    pub(crate) fn is_proxied(&self) -> bool {
        self.proxy.is_some()
    }

    /// TCP (or the tunnel), then TLS. The caller bounds the time.
    pub(crate) async fn open(&self) -> Result<Transport, ConnectFailure> {
        let tcp = match &self.proxy {
            None => self
                .tcp
                .clone()
                .call(self.target.clone())
                .await
                .map_err(|error| {
                    tracing::debug!(%error, "cannot connect upstream");
                    // hyper-util's error type is not exported; its text tells DNS from TCP.
                    if error.to_string().starts_with("dns") {
                        ConnectFailure::Resolve
                    } else {
                        ConnectFailure::Tcp
                    }
                })?,
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri.clone(), self.tcp.clone());
                if let Some(authorization) = &proxy.authorization {
                    tunnel = tunnel.with_auth(authorization.clone());
                }
                tunnel.call(self.target.clone()).await.map_err(|error| {
                    tracing::debug!(%error, "no tunnel through the proxy");
                    // hyper-util's error type is not exported; its text tells a proxy out of
                    // reach from a proxy that answered otherwise than 200 (or broke off).
                    if error.to_string().contains("underlying connection") {
                        ConnectFailure::ProxyUnreachable
                    } else {
                        ConnectFailure::ProxyRefused
                    }
                })?
            }
        }
        .into_inner();
        match &self.tls {
            None => Ok(Transport::Plain(tcp)),
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|error| {
                        tracing::debug!(%error, "TLS handshake upstream failed");
                        ConnectFailure::Tls
                    })?;
                Ok(Transport::Tls(Box::new(stream)))
            }
        }
    }
}
