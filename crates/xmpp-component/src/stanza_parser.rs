//! The full XML parser of a session, for every stanza the fast readers do not take.
//!
//! One rxml parser lives as long as the session. It is given the server's stream header first,
//! so that stanzas inherit the stream's namespaces exactly as on the wire, and then each framed
//! stanza it has to read, whole. Stanzas read elsewhere are simply never shown to it: to the
//! parser the stream just has fewer children.

use rxml::error::EndOrError;
use rxml::xml_lang::XmlLangStack;
use rxml::{Event, Parse, Parser};
use xso::error::FromEventsError;
use xso::{Context, FromEventsBuilder, FromXml};

use crate::config::XmlLimits;
use crate::inbound::{Inbound, set_read_limits};

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
}

impl StanzaParser {
    /// Reads the server's stream header (and the XML declaration before it, if any).
    pub(crate) fn start(header: &[u8]) -> Result<(Self, StreamHeader), NotWellFormed> {
        let mut parser = Parser::new();
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
                    return Ok((Self { parser, languages }, StreamHeader { id }));
                }
                Ok(Some(_)) | Ok(None) | Err(EndOrError::NeedMoreData) => {
                    return Err(NotWellFormed::Stream("no stream header"));
                }
                Err(EndOrError::Error(e)) => return Err(e.into()),
            }
        }
    }

    /// Reads one whole top-level element, under `limits`. `Ok(None)`: well-formed, but not
    /// readable as anything (the element is dropped and the stream goes on).
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
