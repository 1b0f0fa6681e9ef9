//! Opening a session: TCP connect, stream header, XEP-0114 handshake.

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::timeout;
use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::component::Handshake;
use xmpp_parsers::ns;
use xmpp_parsers::stream_error::DefinedCondition;

use crate::config::ComponentConfig;
use crate::link::error::SessionError;
use crate::stream::inbound::Inbound;
use crate::stream::reader::{ReadFailure, ReadItem, StanzaReader, no_fast_path};
use crate::stream::short_answer::put_escaped;

/// An authenticated session's two halves.
pub(crate) struct LinkStream {
    pub reader: StanzaReader,
    pub writer: OwnedWriteHalf,
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
    timeout(config.timeouts.handshake, handshake(tcp, config))
        .await
        .map_err(|_| SessionError::HandshakeTimeout)?
}

/// The stream header we send (XEP-0114 §3: the stream is in `jabber:component:accept`).
fn stream_header(jid: &str) -> BytesMut {
    let mut header = BytesMut::with_capacity(160 + jid.len());
    header.put_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    header.put_slice(ns::COMPONENT.as_bytes());
    header.put_slice(b"' xmlns:stream='");
    header.put_slice(ns::STREAM.as_bytes());
    header.put_slice(b"' to='");
    put_escaped(jid, &mut header);
    header.put_slice(b"' version='1.0'>");
    header
}

async fn handshake(tcp: TcpStream, config: &ComponentConfig) -> Result<LinkStream, SessionError> {
    let (read, mut writer) = tcp.into_split();
    let mut reader = StanzaReader::new(read, config.limits);
    writer
        .write_all(&stream_header(&config.jid))
        .await
        .map_err(SessionError::Io)?;
    let header = reader.header().await.map_err(SessionError::from)?;
    let stream_id = header.id.ok_or(SessionError::Protocol(
        "the server's stream header has no id",
    ))?;
    // XEP-0114 §3: lowercase hex SHA-1 of stream id + secret (hex needs no escaping).
    let digest = Handshake::from_stream_id_and_password(stream_id, &config.secret)
        .data
        .unwrap_or_default()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>();
    writer
        .write_all(format!("<handshake>{digest}</handshake>").as_bytes())
        .await
        .map_err(SessionError::Io)?;
    match reader
        .next(&mut no_fast_path)
        .await
        .map_err(SessionError::from)?
    {
        ReadItem::Inbound(Inbound::Element(XmppStreamElement::ComponentHandshake(_))) => {
            Ok(LinkStream { reader, writer })
        }
        ReadItem::Inbound(Inbound::Element(XmppStreamElement::StreamError(error))) => {
            Err(match error.0.condition {
                DefinedCondition::NotAuthorized => SessionError::HandshakeRejected,
                DefinedCondition::Conflict => SessionError::Conflict,
                other => SessionError::StreamError(other),
            })
        }
        ReadItem::Inbound(_) => Err(SessionError::Protocol(
            "unexpected element before the handshake answer",
        )),
        ReadItem::Dropped => Err(SessionError::Protocol(
            "malformed element before the handshake answer",
        )),
        ReadItem::StreamEnd => Err(SessionError::StreamClosed),
        ReadItem::Taken(never) => match never {},
    }
}

impl From<ReadFailure> for SessionError {
    fn from(failure: ReadFailure) -> Self {
        match failure {
            ReadFailure::Io(e) => Self::Io(e),
            ReadFailure::Closed => Self::ConnectionClosed,
            ReadFailure::Frame(other) => Self::NotWellFormed(other.to_string()),
            ReadFailure::NotWellFormed(other) => Self::NotWellFormed(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_header_is_well_formed_and_addressed() {
        let header = stream_header("push.example.test");
        let (_, parsed) =
            crate::stream::stanza_parser::StanzaParser::start(&header, crate::XmlLimits::default())
                .expect("well-formed");
        let header = String::from_utf8(header.to_vec()).expect("utf-8");
        assert_eq!(parsed.id, None);
        assert!(header.contains("to='push.example.test'"), "{header}");
        assert!(
            header.contains("xmlns='jabber:component:accept'"),
            "{header}"
        );
    }
}
