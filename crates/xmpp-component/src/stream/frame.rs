//! Finding where each top-level element of the stream ends, before anything parses it.
//!
//! The framer follows only what decides nesting: `<`, the end of each tag (outside quoted
//! attribute values), and the ends of comments, processing instructions and CDATA sections.
//! Whatever it frames is then read by a parser that checks everything else, so it need not
//! reject malformed XML itself; it must only never split a well-formed stanza wrongly.
//!
//! The limits are applied here, while the bytes arrive: a stanza over `max_stanza_bytes`,
//! nested deeper than `max_depth`, with too many elements, too many attributes on one element,
//! or a name or attribute value too long is marked skipped and its bytes are dropped as they
//! are scanned, so it costs no memory whatever its size, and no parser ever sees it.

use memchr::{memchr, memchr3, memmem};

use crate::config::XmlLimits;

/// Why an element was skipped instead of parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SkipReason {
    TooLarge,
    TooDeep,
    AttributeTooLong,
    NameTooLong,
    TooManyAttributes,
    TooManyElements,
    TooManyFormFields,
    TooManyFieldValues,
    /// The full parser refused it (e.g. an undeclared prefix, a comment, a mismatched tag).
    Malformed,
    UnknownElement,
}

impl SkipReason {
    /// The `reason` of the refused-stanza metric (snake case).
    pub fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::TooDeep => "too_deep",
            Self::AttributeTooLong => "attribute_too_long",
            Self::NameTooLong => "name_too_long",
            Self::TooManyAttributes => "too_many_attributes",
            Self::TooManyElements => "too_many_elements",
            Self::TooManyFormFields => "too_many_form_fields",
            Self::TooManyFieldValues => "too_many_field_values",
            Self::Malformed => "malformed",
            Self::UnknownElement => "unknown_element",
        }
    }

    /// A short label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "stanza too large",
            Self::TooDeep => "stanza nested too deep",
            Self::AttributeTooLong => "attribute value too long",
            Self::NameTooLong => "name too long",
            Self::TooManyAttributes => "too many attributes",
            Self::TooManyElements => "too many elements",
            Self::TooManyFormFields => "too many form fields",
            Self::TooManyFieldValues => "too many field values",
            Self::Malformed => "malformed",
            Self::UnknownElement => "unknown top-level element",
        }
    }

    /// Whether the stanza crossed one of our limits (answered `policy-violation`), rather than
    /// being broken (answered `bad-request`).
    pub fn is_limit(self) -> bool {
        !matches!(self, Self::Malformed | Self::UnknownElement)
    }
}

/// What the framer found in the buffer. Positions are offsets into the buffer passed to
/// [`Framer::next`]; the caller drops `..end` before calling again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The stream header (with any XML declaration before it) ends at `end`.
    Header { end: usize },
    /// A complete stanza (or nonza) at `start..end`.
    Element { start: usize, end: usize },
    /// A stanza that crossed a limit ended at `end`; `start_tag` is its start tag when that
    /// was still whole in the buffer when the limit was crossed (to answer it).
    Skipped {
        end: usize,
        reason: SkipReason,
        start_tag: Option<Vec<u8>>,
    },
    /// `</stream:stream>` (or whatever closes the stream element) ends at `end`.
    StreamEnd { end: usize },
}

/// Input the framer cannot frame at all; the stream cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("text outside of any stanza")]
    TextBetweenStanzas,
}

/// The outcome of one scanning step.
enum Step {
    Continue,
    NeedMore,
    Frame(Frame),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data (or, between stanzas, whitespace).
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start tag; `quote` is the open attribute quote; `slash` if the last byte was `/`.
    StartTag { quote: Option<u8>, slash: bool },
    /// Inside an end tag.
    EndTag,
    /// Inside a comment, processing instruction, CDATA section or declaration: until its end.
    Markup(Terminator),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminator {
    Comment,
    Instruction,
    CData,
    Declaration,
}

impl Terminator {
    fn bytes(self) -> &'static [u8] {
        match self {
            Self::Comment => b"-->",
            Self::Instruction => b"?>",
            Self::CData => b"]]>",
            Self::Declaration => b">",
        }
    }
}

/// The incremental framer of one stream.
#[derive(Debug)]
pub(crate) struct Framer {
    limits: XmlLimits,
    state: State,
    /// Where scanning resumes.
    pos: usize,
    /// Whether the stream header was seen (depth 0 is then inside the stream element).
    in_stream: bool,
    /// Nesting inside the current stanza (the stanza element itself is 1).
    depth: usize,
    /// Start of the current stanza, or of the header, in the buffer.
    start: Option<usize>,
    /// End of the current stanza's start tag, once seen.
    start_tag_end: Option<usize>,
    /// Bytes of the current stanza already dropped from the buffer (only while skipping).
    dropped: usize,
    skip: Option<SkipReason>,
    skipped_start_tag: Option<Vec<u8>>,
    /// Start tags seen in the current stanza.
    elements: usize,
    /// Attribute values opened in the current start tag.
    tag_attributes: usize,
    /// Bytes of the current run of the current start tag: a quoted value, or the unquoted
    /// part (names, `=`, spaces) before the next quote or the tag's end.
    run: usize,
}

impl Framer {
    pub(crate) fn new(limits: XmlLimits) -> Self {
        Self {
            limits,
            state: State::Text,
            pos: 0,
            in_stream: false,
            depth: 0,
            start: None,
            start_tag_end: None,
            dropped: 0,
            skip: None,
            skipped_start_tag: None,
            elements: 0,
            tag_attributes: 0,
            run: 0,
        }
    }

    /// How many bytes at the front of the buffer are no longer needed (whitespace between
    /// stanzas, the scanned part of a skipped stanza). Call [`Self::discard`] after dropping them.
    pub(crate) fn discardable(&self) -> usize {
        match self.start {
            Some(start) if self.skip.is_none() || self.keeps_start_tag() => start,
            _ => self.pos,
        }
    }

    /// Whether a skipped stanza is still kept whole because its own start tag has not ended:
    /// it was skipped for something in that tag (a long value, many attributes), and the tag
    /// is what says how to answer it. Kept up to `max_stanza_bytes`, never past.
    fn keeps_start_tag(&self) -> bool {
        self.in_stream
            && self.depth == 0
            && self.start_tag_end.is_none()
            && self.dropped == 0
            && self.stanza_bytes(self.pos) <= self.limits.max_stanza_bytes
    }

    /// The caller dropped `n` (at most [`Self::discardable`]) bytes from the buffer's front.
    pub(crate) fn discard(&mut self, n: usize) {
        self.pos -= n;
        if let Some(start) = self.start.as_mut() {
            // Only a skipped stanza loses bytes of its own; count them against its size.
            self.dropped += n.saturating_sub(*start);
            *start = start.saturating_sub(n);
        }
        if let Some(end) = self.start_tag_end.as_mut() {
            *end = end.saturating_sub(n);
        }
    }

    fn after_frame(&mut self) {
        self.pos = 0;
        self.depth = 0;
        self.start = None;
        self.start_tag_end = None;
        self.dropped = 0;
        self.skip = None;
        self.skipped_start_tag = None;
        self.elements = 0;
        self.tag_attributes = 0;
        self.run = 0;
        self.state = State::Text;
    }

    fn stanza_bytes(&self, upto: usize) -> usize {
        self.dropped + upto.saturating_sub(self.start.unwrap_or(upto))
    }

    fn mark_skipped(&mut self, reason: SkipReason, buf: &[u8]) {
        if self.skip.is_some() {
            return;
        }
        self.skipped_start_tag = match (self.start, self.start_tag_end) {
            (Some(start), Some(end)) if self.dropped == 0 => Some(buf[start..end].to_vec()),
            _ => None,
        };
        self.skip = Some(reason);
    }

    /// Scans `buf` (the same bytes as before, minus what was dropped, plus what arrived) and
    /// returns the next complete frame, or `None` when more input is needed.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        while self.pos < buf.len() {
            match self.step(buf)? {
                Step::Frame(frame) => return Ok(Some(frame)),
                Step::NeedMore => break,
                Step::Continue => (),
            }
            self.check_size(buf);
        }
        self.check_size(buf);
        Ok(None)
    }

    fn check_size(&mut self, buf: &[u8]) {
        if self.start.is_some()
            && self.in_stream
            && self.stanza_bytes(self.pos) > self.limits.max_stanza_bytes
        {
            self.mark_skipped(SkipReason::TooLarge, buf);
        }
    }

    /// Checks the run of the current start tag that just grew or ended against `max`.
    fn check_run(&mut self, reason: SkipReason, max: usize, buf: &[u8]) {
        if self.in_stream && self.run > max {
            self.mark_skipped(reason, buf);
        }
    }

    /// Advances over one run of bytes in the current state.
    fn step(&mut self, buf: &[u8]) -> Result<Step, FrameError> {
        match self.state {
            State::Text => {
                let rest = &buf[self.pos..];
                let Some(lt) = memchr(b'<', rest) else {
                    self.check_text(rest)?;
                    self.pos = buf.len();
                    return Ok(Step::NeedMore);
                };
                self.check_text(&rest[..lt])?;
                if self.depth == 0 && self.start.is_none() {
                    self.start = Some(self.pos + lt);
                }
                self.pos += lt + 1;
                self.state = State::Open;
            }
            State::Open => match buf[self.pos] {
                b'/' => {
                    self.pos += 1;
                    self.state = State::EndTag;
                }
                b'?' => {
                    self.pos += 1;
                    self.state = State::Markup(Terminator::Instruction);
                }
                b'!' => {
                    const COMMENT: &[u8] = b"!--";
                    const CDATA: &[u8] = b"![CDATA[";
                    let rest = &buf[self.pos..];
                    let (kind, skip) = if rest.starts_with(COMMENT) {
                        (Terminator::Comment, COMMENT.len())
                    } else if rest.starts_with(CDATA) {
                        (Terminator::CData, CDATA.len())
                    } else if COMMENT.starts_with(rest) || CDATA.starts_with(rest) {
                        // Too few bytes yet to tell which.
                        return Ok(Step::NeedMore);
                    } else {
                        (Terminator::Declaration, 1)
                    };
                    self.pos += skip;
                    self.state = State::Markup(kind);
                }
                _ => {
                    self.tag_attributes = 0;
                    self.run = 0;
                    self.state = State::StartTag {
                        quote: None,
                        slash: false,
                    };
                }
            },
            State::StartTag { quote, slash } => return Ok(self.scan_start_tag(buf, quote, slash)),
            State::EndTag => {
                let Some(gt) = memchr(b'>', &buf[self.pos..]) else {
                    self.pos = buf.len();
                    return Ok(Step::NeedMore);
                };
                self.pos += gt + 1;
                self.state = State::Text;
                if self.depth == 0 {
                    let end = self.pos;
                    self.after_frame();
                    return Ok(Step::Frame(Frame::StreamEnd { end }));
                }
                self.depth -= 1;
                if self.depth == 0 {
                    return Ok(Step::Frame(self.element_done()));
                }
            }
            State::Markup(kind) => {
                let terminator = kind.bytes();
                match memmem::find(&buf[self.pos..], terminator) {
                    Some(at) => {
                        self.pos += at + terminator.len();
                        self.state = State::Text;
                    }
                    None => {
                        // The terminator may straddle the next read: rescan its length.
                        self.pos = self.pos.max(buf.len().saturating_sub(terminator.len() - 1));
                        return Ok(Step::NeedMore);
                    }
                }
            }
        }
        Ok(Step::Continue)
    }

    fn scan_start_tag(&mut self, buf: &[u8], mut quote: Option<u8>, mut slash: bool) -> Step {
        let (max_value, max_name) = (self.limits.max_attribute_bytes, self.limits.max_name_bytes);
        let mut at = self.pos;
        while at < buf.len() {
            if let Some(q) = quote {
                match memchr(q, &buf[at..]) {
                    Some(i) => {
                        self.run += i;
                        self.check_run(SkipReason::AttributeTooLong, max_value, buf);
                        self.run = 0;
                        at += i + 1;
                        quote = None;
                        slash = false;
                        continue;
                    }
                    None => {
                        self.run += buf.len() - at;
                        self.check_run(SkipReason::AttributeTooLong, max_value, buf);
                        at = buf.len();
                        break;
                    }
                }
            }
            let Some(i) = memchr3(b'>', b'\'', b'"', &buf[at..]) else {
                slash = buf.last() == Some(&b'/');
                self.run += buf.len() - at;
                self.check_run(SkipReason::NameTooLong, max_name, buf);
                at = buf.len();
                break;
            };
            self.run += i;
            self.check_run(SkipReason::NameTooLong, max_name, buf);
            self.run = 0;
            let byte = buf[at + i];
            if byte == b'>' {
                let empty = (i > 0 && buf[at + i - 1] == b'/') || (i == 0 && slash);
                self.pos = at + i + 1;
                self.state = State::Text;
                return match self.start_tag_done(empty, buf) {
                    Some(frame) => Step::Frame(frame),
                    None => Step::Continue,
                };
            }
            // An attribute value opens.
            self.tag_attributes += 1;
            if self.in_stream && self.tag_attributes > self.limits.max_attributes {
                self.mark_skipped(SkipReason::TooManyAttributes, buf);
            }
            quote = Some(byte);
            at += i + 1;
        }
        self.pos = at;
        self.state = State::StartTag { quote, slash };
        Step::NeedMore
    }

    fn start_tag_done(&mut self, empty: bool, buf: &[u8]) -> Option<Frame> {
        if !self.in_stream {
            if empty {
                // `<stream:stream/>`: a stream that ends as it starts.
                let end = self.pos;
                self.after_frame();
                return Some(Frame::StreamEnd { end });
            }
            self.in_stream = true;
            let end = self.pos;
            self.after_frame();
            return Some(Frame::Header { end });
        }
        if self.depth == 0 {
            self.start_tag_end = Some(self.pos);
            if self.skip.is_some() && self.skipped_start_tag.is_none() && self.dropped == 0 {
                // Skipped for something in its own start tag, which was kept to answer it.
                let start = self.start.unwrap_or(0);
                self.skipped_start_tag = Some(buf[start..self.pos].to_vec());
            }
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            self.mark_skipped(SkipReason::TooManyElements, buf);
        }
        if empty {
            if self.depth == 0 {
                return Some(self.element_done());
            }
            if self.depth + 1 > self.limits.max_depth {
                self.mark_skipped(SkipReason::TooDeep, buf);
            }
            return None;
        }
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            self.mark_skipped(SkipReason::TooDeep, buf);
        }
        None
    }

    fn element_done(&mut self) -> Frame {
        let end = self.pos;
        let frame = match self.skip {
            Some(reason) => Frame::Skipped {
                end,
                reason,
                start_tag: self.skipped_start_tag.take(),
            },
            None => Frame::Element {
                start: self.start.unwrap_or(0),
                end,
            },
        };
        self.after_frame();
        frame
    }

    fn check_text(&self, text: &[u8]) -> Result<(), FrameError> {
        // Between stanzas only whitespace (keepalives) may appear.
        let between = self.depth == 0 && self.start.is_none();
        if between && !text.iter().all(u8::is_ascii_whitespace) {
            return Err(FrameError::TextBetweenStanzas);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
