//! What can go wrong, as callers see it. No variant holds a header, a token or a body.

use std::time::Duration;

use http::StatusCode;

/// Why no connection could be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailure {
    /// The host name has no address.
    #[error("cannot connect: the host name does not resolve")]
    Resolve,
    /// Every address refused or failed.
    #[error("cannot connect")]
    Tcp,
    /// The proxy could not be reached.
    #[error("cannot connect to the proxy")]
    ProxyUnreachable,
    /// The proxy answered CONNECT with something other than 200 (e.g. 403, 407).
    #[error("cannot connect: the proxy refused the tunnel")]
    ProxyRefused,
    /// TLS failed (e.g. an untrusted certificate).
    #[error("cannot connect: the TLS handshake failed")]
    Tls,
    /// Only HTTP/2 is allowed and the server did not choose `h2` by ALPN.
    #[error("cannot connect: the server does not offer HTTP/2 by ALPN")]
    NoHttp2,
    /// The HTTP/2 preface could not be sent, or the connection ended before its first PING
    /// was answered.
    #[error("cannot connect: the HTTP/2 handshake failed")]
    Handshake,
    /// The HTTP/1.1 handshake failed.
    #[error("cannot connect: the HTTP/1.1 connection failed")]
    Http1,
    /// No connection in the time allowed.
    #[error("cannot connect: timed out")]
    TimedOut,
}

/// Why a request brought no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] ConnectFailure),
    /// The connection failed before the answer's head came.
    #[error("connection failed")]
    Connection,
    /// No answer within [`request_timeout`](crate::UpstreamSettings::request_timeout).
    #[error("no answer in time")]
    TimedOut,
    /// The request cannot be sent (e.g. a header HTTP/2 forbids).
    #[error("the request cannot be sent: {0}")]
    InvalidRequest(&'static str),
    /// The answer's head came, its body is longer than
    /// [`max_body_bytes`](crate::UpstreamSettings::max_body_bytes).
    #[error("the answer (HTTP {status}) is longer than {limit} bytes")]
    BodyTooLarge {
        /// The answer's status.
        status: StatusCode,
        /// The answer's `Retry-After`, parsed.
        retry_after: Option<Duration>,
        /// The cap.
        limit: usize,
    },
    /// The answer's head came, then the connection failed before its body ended.
    #[error("HTTP {status}, then connection failed while reading the answer")]
    BodyBroken {
        /// The answer's status.
        status: StatusCode,
        /// The answer's `Retry-After`, parsed.
        retry_after: Option<Duration>,
    },
}
