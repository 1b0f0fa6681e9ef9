//! A strict reader of plain XML, for the few stanza shapes the link reads straight from the
//! wire (see `fast_stanza`).
//!
//! It accepts a narrow subset on purpose: unprefixed element names, ASCII names, the five
//! predefined entities, no CDATA, comments or processing instructions, no carriage returns
//! and no tabs or newlines inside attribute values (which XML would normalise). Anything else
//! is [`Unusual`], and the caller hands the stanza to the full parser instead, so this reader
//! never has to agree with it on anything but the plain case.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};

/// The stanza is outside the plain subset; read it with the full parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unusual;

pub(crate) type Plain<T> = Result<T, Unusual>;

/// At most this many attributes on one element (more is unusual for the shapes read here).
const MAX_ATTRIBUTES: usize = 8;

/// One token of a stanza.
// Tokens live on the stack for a moment each; boxing the tag would cost an allocation per tag.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Token<'a> {
    Start(Tag<'a>),
    End(&'a str),
    /// Character data as on the wire (entities not yet decoded; checked to be plain).
    Text(&'a str),
}

/// A start tag: its name and attributes (values as on the wire, checked to be plain).
#[derive(Debug)]
pub(crate) struct Tag<'a> {
    pub name: &'a str,
    pub empty: bool,
    attrs: [(&'a str, &'a str); MAX_ATTRIBUTES],
    len: usize,
}

impl<'a> Tag<'a> {
    /// The attributes, in document order.
    pub(crate) fn attrs(&self) -> &[(&'a str, &'a str)] {
        &self.attrs[..self.len]
    }

    /// The raw value of attribute `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&'a str> {
        self.attrs()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The namespace of this element: its own `xmlns`, else `parent`'s.
    pub(crate) fn namespace(&self, parent: &'a str) -> &'a str {
        self.attr("xmlns").unwrap_or(parent)
    }
}

/// Reads the tokens of one complete stanza.
pub(crate) struct Tokenizer<'a> {
    text: &'a str,
    pos: usize,
    max_attribute_bytes: usize,
}

impl<'a> Tokenizer<'a> {
    /// Checks the characters of the whole stanza once: UTF-8, and no character XML forbids or
    /// would normalise away.
    pub(crate) fn new(stanza: &'a [u8], max_attribute_bytes: usize) -> Plain<Self> {
        let text = std::str::from_utf8(stanza).map_err(|_| Unusual)?;
        // C0 controls other than tab and newline (carriage returns would be normalised).
        if stanza.iter().any(|&b| b < 0x20 && b != b'\t' && b != b'\n') {
            return Err(Unusual);
        }
        // U+FFFE and U+FFFF are not XML characters.
        if memmem::find_iter(stanza, b"\xEF\xBF").any(|at| stanza.get(at + 2) >= Some(&0xBE)) {
            return Err(Unusual);
        }
        Ok(Self {
            text,
            pos: 0,
            max_attribute_bytes,
        })
    }

    /// Whether every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next token; [`Unusual`] at the end of input too (the reader of a shape knows when
    /// the stanza ends and never asks past it).
    pub(crate) fn next_token(&mut self) -> Plain<Token<'a>> {
        let bytes = self.bytes();
        let rest = bytes.get(self.pos..).ok_or(Unusual)?;
        if rest.is_empty() {
            return Err(Unusual);
        }
        if rest[0] != b'<' {
            let len = memchr(b'<', rest).unwrap_or(rest.len());
            let text = &self.text[self.pos..self.pos + len];
            check_text(text)?;
            self.pos += len;
            return Ok(Token::Text(text));
        }
        self.pos += 1;
        match rest.get(1) {
            Some(b'/') => {
                self.pos += 1;
                let name = self.name()?;
                self.skip_space();
                self.require(b'>')?;
                Ok(Token::End(name))
            }
            Some(b'!' | b'?') | None => Err(Unusual),
            Some(_) => self.start_tag().map(Token::Start),
        }
    }

    fn start_tag(&mut self) -> Plain<Tag<'a>> {
        let name = self.name()?;
        if name.contains(':') {
            return Err(Unusual);
        }
        let mut tag = Tag {
            name,
            empty: false,
            attrs: [("", ""); MAX_ATTRIBUTES],
            len: 0,
        };
        loop {
            let spaced = self.skip_space();
            match self.bytes().get(self.pos) {
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(tag);
                }
                Some(b'/') => {
                    self.pos += 1;
                    self.require(b'>')?;
                    tag.empty = true;
                    return Ok(tag);
                }
                // XML requires white space before each attribute.
                Some(_) if spaced => {
                    let attr = self.attribute()?;
                    if tag.len == MAX_ATTRIBUTES || tag.attrs().iter().any(|(n, _)| *n == attr.0) {
                        return Err(Unusual);
                    }
                    tag.attrs[tag.len] = attr;
                    tag.len += 1;
                }
                _ => return Err(Unusual),
            }
        }
    }

    fn attribute(&mut self) -> Plain<(&'a str, &'a str)> {
        let name = self.name()?;
        // Prefixed attributes: only `xml:lang`; namespace prefixes are declared nowhere here.
        if name.contains(':') && name != "xml:lang" {
            return Err(Unusual);
        }
        self.skip_space();
        self.require(b'=')?;
        self.skip_space();
        let quote = *self.bytes().get(self.pos).ok_or(Unusual)?;
        if quote != b'\'' && quote != b'"' {
            return Err(Unusual);
        }
        self.pos += 1;
        let rest = &self.bytes()[self.pos..];
        let len = memchr(quote, rest).ok_or(Unusual)?;
        let value = &self.text[self.pos..self.pos + len];
        self.pos += len + 1;
        if value.len() > self.max_attribute_bytes
            || memchr2(b'<', b'\t', value.as_bytes()).is_some()
            || memchr(b'\n', value.as_bytes()).is_some()
        {
            return Err(Unusual);
        }
        check_entities(value)?;
        Ok((name, value))
    }

    /// An ASCII XML name (letters, digits, `_`, `-`, `.`, `:`; not starting with a digit,
    /// `-` or `.`).
    fn name(&mut self) -> Plain<&'a str> {
        let bytes = self.bytes();
        let start = self.pos;
        let first = *bytes.get(start).ok_or(Unusual)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return Err(Unusual);
        }
        let len = bytes[start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')))
            .unwrap_or(bytes.len() - start);
        self.pos += len;
        Ok(&self.text[start..start + len])
    }

    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.bytes().get(self.pos), Some(b' ' | b'\t' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn require(&mut self, byte: u8) -> Plain<()> {
        if self.bytes().get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Unusual)
        }
    }
}

/// Character data must not contain `]]>`, and its entities must be predefined ones.
fn check_text(text: &str) -> Plain<()> {
    if memmem::find(text.as_bytes(), b"]]>").is_some() {
        return Err(Unusual);
    }
    check_entities(text)
}

const ENTITIES: [(&str, char); 5] = [
    ("amp;", '&'),
    ("lt;", '<'),
    ("gt;", '>'),
    ("apos;", '\''),
    ("quot;", '"'),
];

fn check_entities(raw: &str) -> Plain<()> {
    let mut rest = raw;
    while let Some(at) = memchr(b'&', rest.as_bytes()) {
        let after = &rest[at + 1..];
        let (entity, _) = ENTITIES
            .iter()
            .find(|(entity, _)| after.starts_with(entity))
            .ok_or(Unusual)?;
        rest = &after[entity.len()..];
    }
    Ok(())
}

/// The text of checked character data or an attribute value, entities decoded.
pub(crate) fn decode(raw: &str) -> Cow<'_, str> {
    if memchr(b'&', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr(b'&', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match ENTITIES
            .iter()
            .find(|(entity, _)| after.starts_with(entity))
        {
            Some((entity, character)) => {
                out.push(*character);
                rest = &after[entity.len()..];
            }
            // Checked before: unreachable; keep the text as it is.
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Reads past the rest of an element whose start tag was just read (it must not be empty),
/// checking that everything in it is plain and properly nested.
pub(crate) fn skip_element(tokens: &mut Tokenizer<'_>, name: &str) -> Plain<()> {
    loop {
        match tokens.next_token()? {
            Token::Start(tag) => {
                if !tag.empty {
                    skip_element(tokens, tag.name)?;
                }
            }
            Token::End(end) => return if end == name { Ok(()) } else { Err(Unusual) },
            Token::Text(_) => (),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(xml: &str) -> Plain<Vec<String>> {
        let mut t = Tokenizer::new(xml.as_bytes(), 4096)?;
        let mut out = Vec::new();
        while !t.at_end() {
            out.push(match t.next_token()? {
                Token::Start(tag) => format!("<{} {:?} {}", tag.name, tag.attrs(), tag.empty),
                Token::End(name) => format!("</{name}"),
                Token::Text(text) => format!("{:?}", decode(text)),
            });
        }
        Ok(out)
    }

    #[test]
    fn plain_xml_is_read() {
        let read = tokens("<a x='1' y=\"&amp;2\"><b/>t&lt;x</a >").unwrap();
        assert_eq!(
            read,
            [
                "<a [(\"x\", \"1\"), (\"y\", \"&amp;2\")] false",
                "<b [] true",
                "\"t<x\"",
                "</a",
            ]
        );
        assert_eq!(decode("&apos;&quot;&gt;"), "'\">");
    }

    #[test]
    fn anything_unusual_is_refused() {
        for xml in [
            "<a x='1'x='2'/>",
            "<a x='1' x='2'/>",
            "<p:a/>",
            "<a p:x='1'/>",
            "<a xmlns:p='urn:x'/>",
            "<a>&nbsp;</a>",
            "<a>&#65;</a>",
            "<a x='&#65;'/>",
            "<a><![CDATA[x]]></a>",
            "<a><!-- c --></a>",
            "<a><?pi x?></a>",
            "<a>]]></a>",
            "<a>\r\n</a>",
            "<a x='a\tb'/>",
            "<a x='a\nb'/>",
            "<a x='<'/>",
            "<a>\u{1}</a>",
            "<a>\u{FFFE}</a>",
            "<1a/>",
            "<é/>",
            "<a x=1/>",
        ] {
            assert_eq!(tokens(xml), Err(Unusual), "{xml}");
        }
        assert_eq!(Tokenizer::new(b"<a>\xff</a>", 10).err(), Some(Unusual));
    }

    #[test]
    fn long_attribute_values_are_unusual() {
        let mut t = Tokenizer::new(b"<a x='12345'/>", 4).unwrap();
        assert!(t.next_token().is_err());
    }

    #[test]
    fn skipping_checks_nesting() {
        let mut t = Tokenizer::new(b"<a><b><c/></b>x</a>", 100).unwrap();
        assert!(matches!(t.next_token(), Ok(Token::Start(_))));
        assert_eq!(skip_element(&mut t, "a"), Ok(()));
        assert!(t.at_end());
        let mut t = Tokenizer::new(b"<a><b></c></a>", 100).unwrap();
        assert!(matches!(t.next_token(), Ok(Token::Start(_))));
        assert_eq!(skip_element(&mut t, "a"), Err(Unusual));
    }
}
