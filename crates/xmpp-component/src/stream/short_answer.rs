//! IQ answers without payload (an empty result, or an error with only a type and a defined
//! condition) written straight as bytes. They are most of what the link sends (one per publish),
//! and going through the generic stanza serialiser costs more than the write itself. The bytes
//! are exactly those the generic serialiser produces; anything else takes the generic path.

use bytes::{BufMut, BytesMut};
use std::collections::BTreeMap;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::stanza::Stanza;

use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

/// Appends `stanza` to `out` when it is a short answer; `false` (and nothing appended) otherwise.
pub(crate) fn encode(stanza: &Stanza, out: &mut BytesMut) -> bool {
    let Stanza::Iq(iq) = stanza else {
        return false;
    };
    let (type_, from, to, id, error) = match iq {
        Iq::Result {
            from,
            to,
            id,
            payload: None,
        } => ("result", from, to, id, None),
        Iq::Error {
            from,
            to,
            id,
            error,
            payload: None,
        } => {
            let Some(parts) = plain_error(error) else {
                return false;
            };
            ("error", from, to, id, Some(parts))
        }
        _ => return false,
    };
    let from = from.as_ref().map(Jid::as_str);
    let to = to.as_ref().map(Jid::as_str);
    // The generic serialiser refuses characters XML cannot carry; leave those to it.
    if ![from, to, Some(id.as_str())]
        .into_iter()
        .flatten()
        .all(is_xml_text)
    {
        return false;
    }
    out.put_slice(b"<iq type='");
    out.put_slice(type_.as_bytes());
    out.put_u8(b'\'');
    for (name, value) in [("from", from), ("to", to), ("id", Some(id.as_str()))] {
        if let Some(value) = value {
            out.put_u8(b' ');
            out.put_slice(name.as_bytes());
            out.put_slice(b"='");
            put_escaped(value, out);
            out.put_u8(b'\'');
        }
    }
    out.put_u8(b'>');
    if let Some((error_type, condition)) = error {
        // RFC 6120 §8.3.2: the condition is in the stanzas namespace; `<error/>` itself stays
        // in the stream's default namespace (docs/protocol.md A.1).
        out.put_slice(b"<error type='");
        out.put_slice(error_type.as_bytes());
        out.put_slice(b"'><");
        out.put_slice(condition.as_bytes());
        out.put_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'></");
        out.put_slice(condition.as_bytes());
        out.put_slice(b"></error>");
    }
    out.put_slice(b"</iq>");
    true
}

/// The type and condition names of an error that carries nothing else.
fn plain_error(error: &StanzaError) -> Option<(&'static str, &'static str)> {
    if error.by.is_some() || !error.texts.is_empty() || error.other.is_some() {
        return None;
    }
    let type_ = match error.type_ {
        ErrorType::Auth => "auth",
        ErrorType::Cancel => "cancel",
        ErrorType::Continue => "continue",
        ErrorType::Modify => "modify",
        ErrorType::Wait => "wait",
    };
    // The conditions the link and the push roles answer with; others take the generic path.
    let condition = match error.defined_condition {
        DefinedCondition::BadRequest => "bad-request",
        DefinedCondition::FeatureNotImplemented => "feature-not-implemented",
        DefinedCondition::Forbidden => "forbidden",
        DefinedCondition::InternalServerError => "internal-server-error",
        DefinedCondition::ItemNotFound => "item-not-found",
        DefinedCondition::NotAllowed => "not-allowed",
        DefinedCondition::RecipientUnavailable => "recipient-unavailable",
        DefinedCondition::ResourceConstraint => "resource-constraint",
        DefinedCondition::ServiceUnavailable => "service-unavailable",
        _ => return None,
    };
    Some((type_, condition))
}

/// XML 1.0 §2.2 `Char`: no control characters but tab, newline and carriage return, and
/// neither U+FFFE nor U+FFFF (Rust strings hold no surrogates).
pub(crate) fn is_xml_text(value: &str) -> bool {
    if value.is_ascii() {
        return value
            .bytes()
            .all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'));
    }
    value
        .chars()
        .all(|c| c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}' || matches!(c, '\t' | '\n' | '\r'))
}

/// Escapes an attribute value quoted with `'` as the generic serialiser does.
pub(crate) fn put_escaped(value: &str, out: &mut BytesMut) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let entity: &[u8] = match b {
            b'\'' => b"&#39;",
            b'"' => b"&#34;",
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xa;",
            b'\r' => b"&#xd;",
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(entity);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
}

/// A stanza error without text or application condition.
pub fn stanza_error(type_: ErrorType, condition: DefinedCondition) -> StanzaError {
    StanzaError {
        type_,
        by: None,
        defined_condition: condition,
        texts: BTreeMap::new(),
        other: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::writer::StanzaEncoder;

    fn generic(stanza: &Stanza) -> Vec<u8> {
        let mut out = BytesMut::new();
        StanzaEncoder::new()
            .encode_generic(stanza, &mut out)
            .unwrap();
        out.to_vec()
    }

    fn short(stanza: &Stanza) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        encode(stanza, &mut out).then(|| out.to_vec())
    }

    fn jid(s: &str) -> Option<Jid> {
        Some(Jid::new(s).unwrap())
    }

    #[test]
    fn results_and_errors_match_the_generic_serialiser_byte_for_byte() {
        let addresses = [
            (jid("push.example.test"), jid("example.test")),
            (
                jid("push.example.test"),
                jid("a@example.test/r'&<>\"x\u{e9}\u{4e2d}"),
            ),
            (None, jid("example.test")),
            (jid("push.example.test"), None),
            (None, None),
        ];
        let ids = ["41f0de5f", "", "i'd&<>\"\t\n\r", "\u{e9}t\u{e9}"];
        let errors = [
            (ErrorType::Cancel, DefinedCondition::ServiceUnavailable),
            (ErrorType::Wait, DefinedCondition::ResourceConstraint),
            (ErrorType::Modify, DefinedCondition::BadRequest),
            (ErrorType::Cancel, DefinedCondition::ItemNotFound),
            (ErrorType::Auth, DefinedCondition::Forbidden),
            (ErrorType::Wait, DefinedCondition::RecipientUnavailable),
            (ErrorType::Wait, DefinedCondition::InternalServerError),
            (ErrorType::Cancel, DefinedCondition::FeatureNotImplemented),
            (ErrorType::Continue, DefinedCondition::NotAllowed),
        ];
        let mut checked = 0;
        for (from, to) in &addresses {
            for id in ids {
                let result = Stanza::Iq(Iq::Result {
                    from: from.clone(),
                    to: to.clone(),
                    id: id.to_owned(),
                    payload: None,
                });
                assert_eq!(short(&result), Some(generic(&result)), "{result:?}");
                checked += 1;
                for (type_, condition) in &errors {
                    let error = Stanza::Iq(Iq::Error {
                        from: from.clone(),
                        to: to.clone(),
                        id: id.to_owned(),
                        error: stanza_error(type_.clone(), condition.clone()),
                        payload: None,
                    });
                    assert_eq!(short(&error), Some(generic(&error)), "{error:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, addresses.len() * ids.len() * (1 + errors.len()));
    }

    #[test]
    fn anything_else_takes_the_generic_path() {
        let mut with_text = stanza_error(ErrorType::Cancel, DefinedCondition::ItemNotFound);
        with_text
            .texts
            .insert(String::new(), "gone for good".to_owned());
        let others = [
            Iq::Result {
                from: jid("push.example.test"),
                to: jid("example.test"),
                id: "p".into(),
                payload: Some(xmpp_parsers::minidom::Element::bare("x", "urn:x")),
            },
            Iq::Error {
                from: jid("push.example.test"),
                to: jid("example.test"),
                id: "t".into(),
                error: with_text,
                payload: None,
            },
            Iq::Error {
                from: jid("push.example.test"),
                to: jid("example.test"),
                id: "c".into(),
                error: stanza_error(ErrorType::Cancel, DefinedCondition::Conflict),
                payload: None,
            },
            Iq::Result {
                from: jid("push.example.test"),
                to: jid("example.test"),
                id: "nul\u{0}".into(),
                payload: None,
            },
            Iq::Result {
                from: jid("push.example.test"),
                to: jid("example.test"),
                id: "\u{FFFE}".into(),
                payload: None,
            },
        ];
        for iq in others {
            let stanza = Stanza::Iq(iq);
            assert_eq!(short(&stanza), None, "{stanza:?}");
        }
    }
}
