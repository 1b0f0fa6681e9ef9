//! One top-level element read from the server, with the XML limits enforced while it is parsed.
//!
//! tokio-xmpp's XML stream hands each top-level element to a `FromXml` builder. This builder
//! wraps the stanza parser, counts wire bytes, depth and attribute sizes as the events arrive,
//! and once a limit is crossed drops what it has built and only follows the nesting until the
//! element ends. So an over-limit stanza costs no memory and does not break the stream framing.

use std::cell::Cell;

use rxml::{AttrMap, Event, Namespace, QName};
use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;
use xso::error::{Error, FromEventsError};
use xso::fromxml::FallibleBuilder;
use xso::{Context, FromEventsBuilder, FromXml};

use crate::config::XmlLimits;

thread_local! {
    // `FromXml::from_events` has no way to receive settings, so the reader puts the link's limits
    // here right before it polls the stream; the builder reads them synchronously within that
    // poll, on the same thread.
    static READ_LIMITS: Cell<XmlLimits> = Cell::new(XmlLimits::default());
}

/// Makes `limits` the ones applied to elements that start during the next stream poll.
pub(crate) fn set_read_limits(limits: XmlLimits) {
    READ_LIMITS.set(limits);
}

/// The kind of a top-level element, known from its name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Iq,
    Message,
    Presence,
    Other,
}

/// The header attributes of a stanza, kept for IQs so that a broken one can still be answered.
#[derive(Debug, Default)]
pub(crate) struct IqHeaderAttrs {
    pub id: Option<String>,
    pub type_: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl IqHeaderAttrs {
    /// Whether this header announces a request (get or set) that must be answered.
    pub fn is_request(&self) -> bool {
        matches!(self.type_.as_deref(), Some("get" | "set"))
    }
}

/// Why an element was skipped instead of parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SkipReason {
    TooLarge,
    TooDeep,
    AttributeTooLong,
    UnknownElement,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "stanza too large",
            Self::TooDeep => "stanza nested too deep",
            Self::AttributeTooLong => "attribute value too long",
            Self::UnknownElement => "unknown top-level element",
        }
    }
}

/// What one top-level element turned out to be.
// The large variant is the common one (every stanza); boxing it would cost an allocation per
// stanza to save stack space for the rare broken ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A well-formed stanza or nonza.
    Element(XmppStreamElement),
    /// A stanza whose content did not parse (e.g. an IQ get without a payload).
    Invalid {
        kind: ElementKind,
        header: IqHeaderAttrs,
        error: Error,
    },
    /// A stanza dropped because of a limit, or an element we do not know.
    Skipped {
        kind: ElementKind,
        header: IqHeaderAttrs,
        reason: SkipReason,
    },
}

type StanzaBuilder = FallibleBuilder<<XmppStreamElement as FromXml>::Builder, Error>;

/// Builder of [`Inbound`]: the stanza builder plus limit accounting.
pub(crate) struct InboundBuilder {
    limits: XmlLimits,
    kind: ElementKind,
    header: IqHeaderAttrs,
    // Nesting depth inside the top-level element (the element itself is 1).
    depth: usize,
    bytes: usize,
    // `None` once the element is being skipped, and while `empty_result` waits.
    inner: Option<StanzaBuilder>,
    empty_result: Option<EmptyResult>,
    skip: Option<SkipReason>,
}

/// An IQ result that may turn out empty (what clients answer to a push, and servers to a
/// ping). If the next event closes it, it is built here; anything else hands the saved start
/// tag to the stanza parser, which then sees exactly the events it would have seen.
struct EmptyResult {
    name: QName,
    attrs: AttrMap,
    id: String,
    from: Option<Jid>,
    to: Option<Jid>,
}

impl EmptyResult {
    /// Only the shape the stanza parser accepts: `iq` in the stream namespace, `type='result'`,
    /// an `id`, addresses that parse, and no other attribute but `xml:lang`. Anything else is given back.
    fn of(name: QName, attrs: AttrMap) -> Result<Self, (QName, AttrMap)> {
        match Self::parts(&name, &attrs) {
            Some((id, from, to)) => Ok(Self {
                name,
                attrs,
                id,
                from,
                to,
            }),
            None => Err((name, attrs)),
        }
    }

    #[allow(clippy::type_complexity)]
    fn parts(name: &QName, attrs: &AttrMap) -> Option<(String, Option<Jid>, Option<Jid>)> {
        if name.0 != ns::DEFAULT_NS || name.1.as_str() != "iq" {
            return None;
        }
        let mut id = None;
        let (mut from, mut to) = (None, None);
        let mut result = false;
        for ((attr_ns, attr_name), value) in attrs.iter() {
            if *attr_ns != Namespace::NONE {
                // Prosody stamps `xml:lang` on what clients send; the stanza parser ignores it.
                if *attr_ns == Namespace::XML && attr_name.as_str() == "lang" {
                    continue;
                }
                return None;
            }
            match attr_name.as_str() {
                "type" => result = value == "result",
                "id" => id = Some(value.clone()),
                "from" => from = Some(Jid::new(value).ok()?),
                "to" => to = Some(Jid::new(value).ok()?),
                _ => return None,
            }
        }
        Some((id.filter(|_| result)?, from, to))
    }

    fn into_inbound(self) -> Inbound {
        Inbound::Element(XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
            from: self.from,
            to: self.to,
            id: self.id,
            payload: None,
        })))
    }
}

fn kind_of(name: &QName) -> ElementKind {
    match name.1.as_str() {
        "iq" => ElementKind::Iq,
        "message" => ElementKind::Message,
        "presence" => ElementKind::Presence,
        _ => ElementKind::Other,
    }
}

fn attr(attrs: &AttrMap, name: &str) -> Option<String> {
    attrs.get(&Namespace::NONE, name).cloned()
}

fn start_tag_bytes(name: &QName, attrs: &AttrMap) -> usize {
    attrs
        .iter()
        .map(|((_, n), v)| n.len() + v.len() + 4)
        .sum::<usize>()
        + name.1.len()
        + 2
}

fn attributes_too_long(attrs: &AttrMap, max: usize) -> bool {
    attrs.iter().any(|(_, v)| v.len() > max)
}

impl InboundBuilder {
    fn skip(&mut self, reason: SkipReason) {
        if self.skip.is_none() {
            self.skip = Some(reason);
            self.inner = None;
            self.empty_result = None;
        }
    }

    /// Hands the stanza parser its start tag (for an element first taken for an empty result).
    fn start_inner(&mut self, name: QName, attrs: AttrMap, ctx: &Context<'_>) -> Result<(), Error> {
        match <Result<XmppStreamElement, Error> as FromXml>::from_events(name, attrs, ctx) {
            Ok(inner) => self.inner = Some(inner),
            // Not a stanza, handshake or stream error: skipped, the stream goes on.
            Err(FromEventsError::Mismatch { .. }) => self.skip(SkipReason::UnknownElement),
            Err(FromEventsError::Invalid(e)) => return Err(e),
        }
        Ok(())
    }

    fn finish_skipped(&mut self, reason: SkipReason) -> Inbound {
        Inbound::Skipped {
            kind: self.kind,
            header: std::mem::take(&mut self.header),
            reason,
        }
    }
}

impl FromEventsBuilder for InboundBuilder {
    type Output = Inbound;

    fn feed(&mut self, ev: Event, ctx: &Context<'_>) -> Result<Option<Inbound>, Error> {
        self.bytes = self.bytes.saturating_add(ev.metrics().len());
        match &ev {
            Event::StartElement(_, _, attrs) => {
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    self.skip(SkipReason::TooDeep);
                } else if attributes_too_long(attrs, self.limits.max_attribute_bytes) {
                    self.skip(SkipReason::AttributeTooLong);
                }
            }
            Event::EndElement(_) => self.depth = self.depth.saturating_sub(1),
            Event::Text(..) | Event::XmlDeclaration(..) => (),
        }
        if self.bytes > self.limits.max_stanza_bytes {
            self.skip(SkipReason::TooLarge);
        }
        if let Some(reason) = self.skip {
            return Ok((self.depth == 0).then(|| self.finish_skipped(reason)));
        }
        if let Some(empty) = self.empty_result.take() {
            if self.depth == 0 {
                return Ok(Some(empty.into_inbound()));
            }
            self.start_inner(empty.name, empty.attrs, ctx)?;
            if let Some(reason) = self.skip {
                return Ok((self.depth == 0).then(|| self.finish_skipped(reason)));
            }
        }
        let Some(inner) = self.inner.as_mut() else {
            // Unreachable in practice: `inner` is only `None` while skipping.
            return Ok((self.depth == 0).then(|| self.finish_skipped(SkipReason::UnknownElement)));
        };
        Ok(match inner.feed(ev, ctx)? {
            None => None,
            Some(Ok(element)) => Some(Inbound::Element(element)),
            Some(Err(error)) => Some(Inbound::Invalid {
                kind: self.kind,
                header: std::mem::take(&mut self.header),
                error,
            }),
        })
    }
}

impl FromXml for Inbound {
    type Builder = InboundBuilder;

    fn from_events(
        name: QName,
        attrs: AttrMap,
        ctx: &Context<'_>,
    ) -> Result<InboundBuilder, FromEventsError> {
        let limits = READ_LIMITS.get();
        let kind = kind_of(&name);
        let header = if kind == ElementKind::Iq {
            IqHeaderAttrs {
                id: attr(&attrs, "id"),
                type_: attr(&attrs, "type"),
                from: attr(&attrs, "from"),
                to: attr(&attrs, "to"),
            }
        } else {
            IqHeaderAttrs::default()
        };
        let mut builder = InboundBuilder {
            limits,
            kind,
            header,
            depth: 1,
            bytes: start_tag_bytes(&name, &attrs),
            inner: None,
            empty_result: None,
            skip: None,
        };
        if attributes_too_long(&attrs, limits.max_attribute_bytes) {
            builder.skip(SkipReason::AttributeTooLong);
        } else if builder.bytes > limits.max_stanza_bytes {
            builder.skip(SkipReason::TooLarge);
        } else if kind == ElementKind::Iq {
            match EmptyResult::of(name, attrs) {
                Ok(empty) => builder.empty_result = Some(empty),
                Err((name, attrs)) => builder
                    .start_inner(name, attrs, ctx)
                    .map_err(FromEventsError::Invalid)?,
            }
        } else {
            builder
                .start_inner(name, attrs, ctx)
                .map_err(FromEventsError::Invalid)?;
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the stanza parser alone makes of `xml`.
    fn by_the_stanza_parser(xml: &str) -> String {
        match xso::from_bytes::<XmppStreamElement>(xml.as_bytes()) {
            Ok(element) => format!("{element:?}"),
            Err(error) => format!("invalid: {error}"),
        }
    }

    /// What the link's reader makes of `xml`.
    fn by_the_reader(xml: &str) -> String {
        set_read_limits(XmlLimits::default());
        match xso::from_bytes::<Inbound>(xml.as_bytes()) {
            Ok(Inbound::Element(element)) => format!("{element:?}"),
            Ok(Inbound::Invalid { error, .. }) => format!("invalid: {error}"),
            Ok(Inbound::Skipped { reason, .. }) => format!("skipped: {}", reason.as_str()),
            Err(error) => format!("invalid: {error}"),
        }
    }

    #[test]
    fn empty_results_read_as_the_stanza_parser_reads_them() {
        let ns = "xmlns='jabber:component:accept'";
        let cases = [
            format!(
                "<iq {ns} type='result' id='up.7' from='a@example.test/phone' to='up.example.test'/>"
            ),
            format!("<iq {ns} type='result' id='p' from='example.test'></iq>"),
            format!("<iq {ns} type='result' id='p'/>"),
            format!("<iq {ns} type='result' id=''/>"),
            format!("<iq {ns} type='result' id='w' from='example.test'> </iq>"),
            format!(
                "<iq {ns} type='result' id='c' from='example.test'><query xmlns='urn:x'/></iq>"
            ),
            format!("<iq {ns} type='result' id='t' from='example.test'>text</iq>"),
            format!("<iq {ns} type='result' from='example.test'/>"),
            format!("<iq {ns} type='result' id='b' from='@bad@/'/>"),
            format!("<iq {ns} type='result' id='x' extra='1'/>"),
            format!("<iq {ns} type='result' id='l' xml:lang='en'/>"),
            // As Prosody forwards a client's answer.
            format!(
                "<iq {ns} type='result' to='push.example.test' xml:lang='en' id='c0f5b870.3731' from='alice@example.test/phone'/>"
            ),
            format!("<iq {ns} type='result' id='s' xml:space='preserve'/>"),
            format!("<iq {ns} type='resulty' id='y'/>"),
            format!(
                "<iq {ns} type='get' id='g' from='example.test'><ping xmlns='urn:xmpp:ping'/></iq>"
            ),
        ];
        for xml in &cases {
            assert_eq!(by_the_reader(xml), by_the_stanza_parser(xml), "{xml}");
        }
        // And the common case is the expected stanza.
        let first = by_the_reader(&cases[0]);
        assert!(
            first.contains("Result") && first.contains("up.7"),
            "{first}"
        );
    }
}
