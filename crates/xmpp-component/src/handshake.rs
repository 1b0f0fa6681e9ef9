//! Opening a session: TCP connect, stream header, XEP-0114 handshake.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use futures::{SinkExt, Stream};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_xmpp::xmlstream::{
    ReadError, StreamHeader, Timeouts, XmlStream, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::component::Handshake;
use xmpp_parsers::ns;
use xmpp_parsers::stream_error::DefinedCondition;

use crate::config::{ComponentConfig, XmlLimits};
use crate::error::SessionError;
use crate::inbound::{Inbound, set_read_limits};
use crate::transport::LinkIo;

/// The XML stream of one session.
pub(crate) type LinkStream = XmlStream<LinkIo, Inbound>;

/// The next top-level element, read under `limits`.
pub(crate) fn next_inbound(
    stream: &mut LinkStream,
    limits: XmlLimits,
) -> impl Future<Output = Option<Result<Inbound, ReadError>>> + '_ {
    std::future::poll_fn(move |cx| {
        set_read_limits(limits);
        Pin::new(&mut *stream).poll_next(cx)
    })
}

/// Connects and authenticates, each step under its own deadline.
pub(crate) async fn open(config: &ComponentConfig) -> Result<LinkStream, SessionError> {
    let tcp = timeout(
        config.timeouts.connect,
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| SessionError::ConnectTimeout)?
    .map_err(SessionError::Connect)?;
    // Stanzas are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let io = LinkIo::new(tcp, config.limits.hard_stanza_bytes());
    timeout(config.timeouts.handshake, handshake(io, config))
        .await
        .map_err(|_| SessionError::HandshakeTimeout)?
}

async fn handshake(io: LinkIo, config: &ComponentConfig) -> Result<LinkStream, SessionError> {
    // The stream's own timeouts drive the keepalive: a soft timeout after `keepalive_idle`
    // of silence (we ping), a hard one `keepalive_timeout` later (the link is dead).
    let timeouts = Timeouts {
        read_timeout: config.timeouts.keepalive_idle,
        response_timeout: config.timeouts.keepalive_timeout,
    };
    let header = StreamHeader {
        from: None,
        to: Some(Cow::Borrowed(config.jid.as_str())),
        id: None,
    };
    // XEP-0114 §3: the stream is in `jabber:component:accept`, and no features follow.
    let mut pending = initiate_stream(io, ns::COMPONENT, header, timeouts)
        .await
        .map_err(SessionError::Io)?;
    let stream_id = pending.take_header().id.ok_or(SessionError::Protocol(
        "the server's stream header has no id",
    ))?;
    let mut stream: LinkStream = pending.skip_features();
    // XEP-0114 §3: lowercase hex SHA-1 of stream id + secret.
    let handshake = Handshake::from_stream_id_and_password(stream_id.into_owned(), &config.secret);
    stream.send(&handshake).await.map_err(SessionError::Io)?;
    loop {
        match next_inbound(&mut stream, config.limits).await {
            Some(Ok(Inbound::Element(XmppStreamElement::ComponentHandshake(_)))) => {
                stream.get_stream().element_done();
                return Ok(stream);
            }
            Some(Ok(Inbound::Element(XmppStreamElement::StreamError(error)))) => {
                return Err(match error.0.condition {
                    DefinedCondition::NotAuthorized => SessionError::HandshakeRejected,
                    DefinedCondition::Conflict => SessionError::Conflict,
                    other => SessionError::StreamError(other),
                });
            }
            Some(Ok(_)) => {
                return Err(SessionError::Protocol(
                    "unexpected element before the handshake answer",
                ));
            }
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(ReadError::HardError(e))) => return Err(SessionError::Io(e)),
            Some(Err(ReadError::ParseError(_))) => {
                return Err(SessionError::Protocol(
                    "malformed element before the handshake answer",
                ));
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => {
                return Err(SessionError::StreamClosed);
            }
        }
    }
}
