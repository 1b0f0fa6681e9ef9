//! Errors at the edge of the component link.

use std::io;

use xmpp_parsers::stream_error::DefinedCondition;

/// Sending a stanza failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The link is not connected (or dropped before the stanza was queued).
    #[error("the component link is down")]
    Down,
    /// The outbound queue is full (only from `try_send`).
    #[error("the outbound queue of the component link is full")]
    QueueFull,
    /// The stanza has no `to`, or a `from` outside the component's domain; the server would
    /// close the whole stream for it (ejabberd: improper-addressing, Prosody: invalid-from).
    #[error("stanza not sent: {0}")]
    Misaddressed(&'static str),
}

/// An outgoing IQ got no usable answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IqError {
    /// No answer within the deadline.
    #[error("no answer to the IQ within the deadline")]
    Timeout,
    /// The link was down, or dropped before the answer arrived.
    #[error("the component link is down")]
    LinkDown,
    /// The IQ was not a get/set with a `to` address, so no answer could be matched.
    #[error("only an IQ get or set with a `to` address can be tracked")]
    NotARequest,
    /// The IQ's `from` is outside the component's domain.
    #[error("IQ not sent: {0}")]
    Misaddressed(&'static str),
}

impl From<LinkError> for IqError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Down | LinkError::QueueFull => Self::LinkDown,
            LinkError::Misaddressed(why) => Self::Misaddressed(why),
        }
    }
}

/// Why one connection attempt or session ended (internal; shown as [`crate::link::state::LinkState::Down`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// XEP-0114 §3: the server refused our handshake, almost always a wrong secret.
    #[error("handshake rejected by the server (not-authorized): check the component secret")]
    HandshakeRejected,
    /// Prosody allows one connection per component JID.
    #[error(
        "the server refused the stream (conflict): another connection holds this component JID"
    )]
    Conflict,
    #[error("stream error from the server: {0}")]
    StreamError(DefinedCondition),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("i/o error: {0}")]
    Io(io::Error),
    #[error("no input within the keepalive timeout")]
    KeepaliveTimeout,
    #[error("the server closed the stream")]
    StreamClosed,
    /// Prosody and ejabberd drop the TCP connection on shutdown without `</stream:stream>`.
    #[error("the server closed the connection without ending the stream")]
    ConnectionClosed,
    /// RFC 6120 §11: the stream must be well-formed XML; there is no recovering from it.
    #[error("the server's stream is not well-formed: {0}")]
    NotWellFormed(String),
}
