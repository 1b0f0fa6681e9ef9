//! One top-level element read from the server, with the XML limits enforced while it is parsed.
//!
//! The framer (`frame`) already skips stanzas over the size or depth limit before any parsing.
//! What reaches the full parser (`stanza_parser`) is built by this `FromXml` builder, which
//! wraps the stanza parser and still applies the limits event by event (attribute sizes are
//! only checked here), dropping what it has built once one is crossed.

use std::cell::Cell;

use rxml::{AttrMap, Event, Namespace, QName};
use tokio_xmpp::xmlstream::XmppStreamElement;
use xso::error::{Error, FromEventsError};
use xso::fromxml::FallibleBuilder;
use xso::{Context, FromEventsBuilder, FromXml};

use crate::config::XmlLimits;
use crate::stream::frame::SkipReason;

thread_local! {
    // `FromXml::from_events` has no way to receive settings, so the reader puts the link's limits
    // here right before it parses a stanza; the builder reads them synchronously within that
    // call, on the same thread.
    static READ_LIMITS: Cell<XmlLimits> = Cell::new(XmlLimits::default());
}

/// Makes `limits` the ones applied to the elements parsed next on this thread.
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
    // Fields of the data form being read, and values of its field being read (XEP-0004 forms
    // do not nest, so one count of each is enough).
    form_fields: usize,
    field_values: usize,
    // `None` once the element is being skipped.
    inner: Option<StanzaBuilder>,
    skip: Option<SkipReason>,
}

impl ElementKind {
    /// The kind of a top-level element named `name` (in the stream's namespace).
    pub(crate) fn of_name(name: &str) -> Self {
        match name {
            "iq" => Self::Iq,
            "message" => Self::Message,
            "presence" => Self::Presence,
            _ => Self::Other,
        }
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
        }
    }

    /// Hands the stanza parser its start tag.
    fn start_inner(&mut self, name: QName, attrs: AttrMap, ctx: &Context<'_>) -> Result<(), Error> {
        match <Result<XmppStreamElement, Error> as FromXml>::from_events(name, attrs, ctx) {
            Ok(inner) => self.inner = Some(inner),
            // Not a stanza, handshake or stream error: skipped, the stream goes on.
            Err(FromEventsError::Mismatch { .. }) => self.skip(SkipReason::UnknownElement),
            Err(FromEventsError::Invalid(e)) => return Err(e),
        }
        Ok(())
    }

    /// Counts the data form fields and values an element adds, against the limits.
    fn count_form_parts(&mut self, name: &QName) {
        if name.0.as_str() != xmpp_parsers::ns::DATA_FORMS {
            return;
        }
        match name.1.as_str() {
            "x" => self.form_fields = 0,
            "field" => {
                self.form_fields += 1;
                self.field_values = 0;
                if self.form_fields > self.limits.max_form_fields {
                    self.skip(SkipReason::TooManyFormFields);
                }
            }
            "value" => {
                self.field_values += 1;
                if self.field_values > self.limits.max_field_values {
                    self.skip(SkipReason::TooManyFieldValues);
                }
            }
            _ => (),
        }
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
            Event::StartElement(_, name, attrs) => {
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    self.skip(SkipReason::TooDeep);
                } else if attributes_too_long(attrs, self.limits.max_attribute_bytes) {
                    self.skip(SkipReason::AttributeTooLong);
                } else {
                    self.count_form_parts(name);
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
        let kind = ElementKind::of_name(name.1.as_str());
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
            form_fields: 0,
            field_values: 0,
            inner: None,
            skip: None,
        };
        if attributes_too_long(&attrs, limits.max_attribute_bytes) {
            builder.skip(SkipReason::AttributeTooLong);
        } else if builder.bytes > limits.max_stanza_bytes {
            builder.skip(SkipReason::TooLarge);
        } else {
            builder
                .start_inner(name, attrs, ctx)
                .map_err(FromEventsError::Invalid)?;
        }
        Ok(builder)
    }
}
