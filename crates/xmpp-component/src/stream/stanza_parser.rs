//! The full XML parser of a session, for every stanza the fast readers do not take.
//!
//! One rxml parser lives as long as the session. It is given the server's stream header first,
//! so that stanzas inherit the stream's namespaces exactly as on the wire, and then each framed
//! stanza it has to read, whole. Stanzas read elsewhere are simply never shown to it: to the
//! parser the stream just has fewer children.
//!
//! A stanza the parser refuses is that stanza's problem, not the stream's: the framer already
//! found where it ends, so the parser is started afresh from the same stream header and the
//! stream goes on.

use rxml::error::EndOrError;
use rxml::xml_lang::XmlLangStack;
use rxml::{Event, Options, Parse, Parser, WithOptions};
use xso::error::FromEventsError;
use xso::{Context, FromEventsBuilder, FromXml};

use crate::config::XmlLimits;
use crate::stream::inbound::{Inbound, set_read_limits};

/// The stream is not well-formed XML (or not an XMPP stream); it cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotWellFormed {
    #[error("not well-formed XML: {0}")]
    Xml(#[from] rxml::Error),
    #[error("{0}")]
    Stream(&'static str),
}

/// What the server's stream header says.
#[derive(Debug)]
pub(crate) struct StreamHeader {
    pub id: Option<String>,
}

/// The session's full parser.
pub(crate) struct StanzaParser {
    parser: Parser,
    languages: XmlLangStack,
    /// The server's stream header, to start afresh after a stanza the parser refused.
    header: Vec<u8>,
    token_bytes: usize,
}

impl StanzaParser {
    /// Reads the server's stream header (and the XML declaration before it, if any); the
    /// parser then takes tokens (names, values, text runs) of up to `limits`'
    /// [`XmlLimits::parser_token_bytes`].
    pub(crate) fn start(
        header: &[u8],
        limits: XmlLimits,
    ) -> Result<(Self, StreamHeader), NotWellFormed> {
        Self::start_with(header, limits.parser_token_bytes())
    }

    fn start_with(
        header: &[u8],
        token_bytes: usize,
    ) -> Result<(Self, StreamHeader), NotWellFormed> {
        let mut parser = Parser::with_options(Options {
            max_token_length: token_bytes,
            ..Options::default()
        });
        let mut languages = XmlLangStack::new();
        let mut rest = header;
        loop {
            match parser.parse(&mut rest, false) {
                Ok(Some(Event::XmlDeclaration(..))) => (),
                Ok(Some(Event::StartElement(_, (namespace, name), attrs))) => {
                    if namespace != xmpp_parsers::ns::STREAM || name != "stream" {
                        return Err(NotWellFormed::Stream(
                            "the stream header is not <stream:stream>",
                        ));
                    }
                    languages.push_from_attrs(&attrs);
                    let id = attrs.get(&rxml::Namespace::NONE, "id").cloned();
                    let parser = Self {
                        parser,
                        languages,
                        header: header.to_vec(),
                        token_bytes,
                    };
                    return Ok((parser, StreamHeader { id }));
                }
                Ok(Some(_)) | Ok(None) | Err(EndOrError::NeedMoreData) => {
                    return Err(NotWellFormed::Stream("no stream header"));
                }
                Err(EndOrError::Error(e)) => return Err(e.into()),
            }
        }
    }

    /// Starts afresh after [`Self::read`] refused an element: a parser that failed is done.
    pub(crate) fn restart(&mut self) -> Result<(), NotWellFormed> {
        let (fresh, _) = Self::start_with(&std::mem::take(&mut self.header), self.token_bytes)?;
        *self = fresh;
        Ok(())
    }

    /// Reads one whole top-level element, under `limits`. `Ok(None)`: well-formed, but not
    /// readable as anything (the element is dropped and the stream goes on). After an error
    /// call [`Self::restart`] before reading on.
    pub(crate) fn read(
        &mut self,
        element: &[u8],
        limits: XmlLimits,
    ) -> Result<Option<Inbound>, NotWellFormed> {
        set_read_limits(limits);
        let mut rest = element;
        let mut builder = None;
        // Nesting inside the element, to find its end once the builder has given up.
        let mut depth = 0usize;
        let mut failed = false;
        loop {
            let event = match self.parser.parse(&mut rest, false) {
                Ok(Some(event)) => event,
                Ok(None) | Err(EndOrError::NeedMoreData) => {
                    return Err(NotWellFormed::Stream("a framed element did not end"));
                }
                Err(EndOrError::Error(e)) => return Err(e.into()),
            };
            self.languages.handle_event(&event);
            match &event {
                Event::StartElement(..) => depth += 1,
                Event::EndElement(..) => depth = depth.saturating_sub(1),
                _ => (),
            }
            let context = Context::empty().with_language(self.languages.current());
            let outcome = match (failed, builder.as_mut(), event) {
                (true, _, _) => None,
                (false, None, Event::StartElement(_, name, attrs)) => {
                    match Inbound::from_events(name, attrs, &context) {
                        Ok(started) => builder = Some(started),
                        Err(FromEventsError::Invalid(_) | FromEventsError::Mismatch { .. }) => {
                            failed = true;
                        }
                    }
                    None
                }
                (false, None, _) => {
                    // The framer refused text between stanzas; nothing else can come first.
                    return Err(NotWellFormed::Stream("unexpected content between stanzas"));
                }
                (false, Some(builder), event) => match builder.feed(event, &context) {
                    Ok(done) => done,
                    Err(_) => {
                        failed = true;
                        None
                    }
                },
            };
            if outcome.is_some() || depth == 0 {
                if !rest.is_empty() {
                    return Err(NotWellFormed::Stream("bytes after a framed element"));
                }
                self.parser.release_temporaries();
                return Ok(outcome);
            }
        }
    }
}
