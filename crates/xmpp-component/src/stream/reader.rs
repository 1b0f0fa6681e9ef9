//! Reading the server's side of the stream: bytes from the socket, framed into top-level
//! elements, each read by the fast readers when it has one of their shapes and by the full
//! parser otherwise.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;
use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::stanza::Stanza;

use crate::config::XmlLimits;
use crate::stream::fast_stanza::{self, FastStanza, IqSetChild};
use crate::stream::fast_xml::{Token, Tokenizer, decode};
use crate::stream::frame::{Frame, FrameError, Framer, SkipReason};
use crate::stream::inbound::{ElementKind, Inbound, IqHeaderAttrs};
use crate::stream::stanza_parser::{NotWellFormed, StanzaParser, StreamHeader};

/// Bytes asked of the socket per read (more when a stanza needs it).
const READ_CHUNK: usize = 16 * 1024;

/// What one call to [`StanzaReader::next`] found.
// The large variant is the common one (every stanza), as in [`Inbound`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ReadItem<T> {
    Inbound(Inbound),
    /// An IQ set the caller's fast reader took straight from its bytes.
    Taken(T),
    /// A well-formed element that means nothing to us; it was dropped.
    Dropped,
    /// The server ended the stream.
    StreamEnd,
}

/// Why reading cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadFailure {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("the connection closed in the middle of the stream")]
    Closed,
    #[error(transparent)]
    NotWellFormed(#[from] NotWellFormed),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The reading half of a session.
pub(crate) struct StanzaReader {
    socket: OwnedReadHalf,
    buf: BytesMut,
    framer: Framer,
    parser: Option<StanzaParser>,
    limits: XmlLimits,
    last_input: Instant,
    /// Wire bytes of the element [`Self::next`] returned last.
    last_element_bytes: usize,
}

impl StanzaReader {
    pub(crate) fn new(socket: OwnedReadHalf, limits: XmlLimits) -> Self {
        Self {
            socket,
            buf: BytesMut::with_capacity(READ_CHUNK),
            framer: Framer::new(limits),
            parser: None,
            limits,
            last_input: Instant::now(),
            last_element_bytes: 0,
        }
    }

    /// Wire bytes of the element [`Self::next`] returned last (0 for a skipped one, which was
    /// not kept).
    pub(crate) fn last_element_bytes(&self) -> usize {
        self.last_element_bytes
    }

    /// When the last bytes arrived.
    pub(crate) fn last_input(&self) -> Instant {
        self.last_input
    }

    /// Reads the server's stream header; call once, before [`Self::next`].
    pub(crate) async fn header(&mut self) -> Result<StreamHeader, ReadFailure> {
        loop {
            match self.framer.next(&self.buf)? {
                Some(Frame::Header { end }) => {
                    let (parser, header) = StanzaParser::start(&self.buf[..end], self.limits)?;
                    self.buf.advance(end);
                    self.parser = Some(parser);
                    return Ok(header);
                }
                Some(_) => {
                    return Err(NotWellFormed::Stream("no stream header").into());
                }
                None => self.fill().await?,
            }
        }
    }

    /// The next top-level element; an IQ set whose only child `take_set` takes (the layer
    /// above's fast path) comes as [`ReadItem::Taken`]. Cancel-safe: dropping the future loses
    /// no input.
    pub(crate) async fn next<T>(
        &mut self,
        take_set: &mut impl FnMut(IqSetChild<'_, '_>) -> Option<T>,
    ) -> Result<ReadItem<T>, ReadFailure> {
        loop {
            if let Some(frame) = self.framer.next(&self.buf)? {
                return self.take(frame, take_set);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes, first dropping those the framer no longer needs.
    async fn fill(&mut self) -> Result<(), ReadFailure> {
        let discard = self.framer.discardable();
        if discard > 0 {
            self.buf.advance(discard);
            self.framer.discard(discard);
        }
        self.buf.reserve(READ_CHUNK);
        let read = self.socket.read_buf(&mut self.buf).await?;
        if read == 0 {
            return Err(ReadFailure::Closed);
        }
        self.last_input = Instant::now();
        Ok(())
    }

    fn take<T>(
        &mut self,
        frame: Frame,
        take_set: &mut impl FnMut(IqSetChild<'_, '_>) -> Option<T>,
    ) -> Result<ReadItem<T>, ReadFailure> {
        self.last_element_bytes = 0;
        match frame {
            Frame::Element { start, end } => {
                let element = &self.buf[start..end];
                let item =
                    match fast_stanza::read(element, self.limits.max_attribute_bytes, take_set) {
                        Some(fast) => from_fast(fast),
                        None => {
                            let parser = self.parser.as_mut().ok_or(NotWellFormed::Stream(
                                "a stanza before the stream header",
                            ))?;
                            match parser.read(element, self.limits) {
                                Ok(Some(inbound)) => ReadItem::Inbound(inbound),
                                Ok(None) => ReadItem::Dropped,
                                Err(error) => {
                                    // The framer found where this stanza ends, so refusing it
                                    // costs only the stanza; the stream goes on with a new parser.
                                    tracing::debug!(%error, "the full parser refused a stanza");
                                    parser.restart()?;
                                    let (kind, header) = header_of(element);
                                    ReadItem::Inbound(Inbound::Skipped {
                                        kind,
                                        header,
                                        reason: SkipReason::Malformed,
                                    })
                                }
                            }
                        }
                    };
                self.last_element_bytes = end - start;
                self.buf.advance(end);
                Ok(item)
            }
            Frame::Skipped {
                end,
                reason,
                start_tag,
            } => {
                self.buf.advance(end);
                let (kind, header) = start_tag
                    .as_deref()
                    .map(header_of)
                    .unwrap_or((ElementKind::Other, IqHeaderAttrs::default()));
                Ok(ReadItem::Inbound(Inbound::Skipped {
                    kind,
                    header,
                    reason,
                }))
            }
            Frame::StreamEnd { end } => {
                self.buf.advance(end);
                Ok(ReadItem::StreamEnd)
            }
            Frame::Header { .. } => Err(NotWellFormed::Stream("a second stream header").into()),
        }
    }
}

fn from_fast<T>(fast: FastStanza<T>) -> ReadItem<T> {
    match fast {
        FastStanza::EmptyResult { id, from, to } => ReadItem::Inbound(Inbound::Element(
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                from,
                to,
                id,
                payload: None,
            })),
        )),
        FastStanza::Request(taken) => ReadItem::Taken(taken),
    }
}

/// A fast path that takes no IQ set (the handshake has none).
pub(crate) fn no_fast_path(_: IqSetChild<'_, '_>) -> Option<std::convert::Infallible> {
    None
}

/// What the start tag of a skipped stanza (or the stanza itself) says about how to answer it.
fn header_of(start_tag: &[u8]) -> (ElementKind, IqHeaderAttrs) {
    let unknown = (ElementKind::Other, IqHeaderAttrs::default());
    // Attribute lengths were not limited while skipping; only the size bound applies here.
    let Ok(mut tokens) = Tokenizer::new(start_tag, usize::MAX) else {
        return unknown;
    };
    let Ok(Token::Start(tag)) = tokens.next_token() else {
        return unknown;
    };
    let kind = ElementKind::of_name(tag.name);
    if kind != ElementKind::Iq {
        return (kind, IqHeaderAttrs::default());
    }
    let value = |name| tag.attr(name).map(|raw| decode(raw).into_owned());
    let header = IqHeaderAttrs {
        id: value("id"),
        type_: value("type"),
        from: value("from"),
        to: value("to"),
    };
    (kind, header)
}
