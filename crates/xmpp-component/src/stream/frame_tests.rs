//! The framer over stanzas split at every byte, limits and skipping.

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x'>";

/// What framing `input` yields when it arrives in pieces of `piece` bytes, with the
/// buffer handling of the reader: frames as (kind, text).
fn frames(
    input: &str,
    piece: usize,
    limits: XmlLimits,
) -> Result<Vec<(String, String)>, FrameError> {
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in input.as_bytes().chunks(piece) {
        let discard = framer.discardable();
        buf.drain(..discard);
        framer.discard(discard);
        buf.extend_from_slice(chunk);
        while let Some(frame) = framer.next(&buf)? {
            let (kind, text, end) = match frame {
                Frame::Header { end } => ("header".to_owned(), buf[..end].to_vec(), end),
                Frame::Element { start, end } => {
                    ("element".to_owned(), buf[start..end].to_vec(), end)
                }
                Frame::Skipped {
                    end,
                    reason,
                    start_tag,
                } => (
                    format!("skipped {}", reason.as_str()),
                    start_tag.unwrap_or_default(),
                    end,
                ),
                Frame::StreamEnd { end } => ("end".to_owned(), buf[..end].to_vec(), end),
            };
            // Whitespace before the stream's end belongs to no stanza.
            out.push((kind, String::from_utf8_lossy(&text).trim_start().to_owned()));
            buf.drain(..end);
        }
    }
    Ok(out)
}

fn every_split(input: &str, limits: XmlLimits) -> Result<Vec<(String, String)>, FrameError> {
    let whole = frames(input, input.len().max(1), limits);
    for piece in 1..input.len() {
        assert_eq!(frames(input, piece, limits), whole, "pieces of {piece}");
    }
    whole
}

fn kinds(frames: &[(String, String)]) -> Vec<&str> {
    frames.iter().map(|(kind, _)| kind.as_str()).collect()
}

#[test]
fn stanzas_are_framed_wherever_the_reads_split_them() {
    let stanzas = [
        "<iq type='result' id='a'/>",
        "<message to='a@b' id=\"q>\"><body>1 &gt; 0 and a > b</body></message>",
        "<iq id='c' type='set'><x a='/>' b=\"'\"><![CDATA[</x> <y>]]></x></iq>",
        "<presence/>",
        "<iq id='d'><!-- </iq> --><?pi </iq>?></iq>",
    ];
    let input = format!("{HEADER} \n{}  </stream:stream>", stanzas.join("\n "));
    let framed = every_split(&input, XmlLimits::default()).unwrap();
    assert_eq!(framed[0], ("header".to_owned(), HEADER.to_owned()));
    for (i, stanza) in stanzas.iter().enumerate() {
        assert_eq!(framed[i + 1], ("element".to_owned(), (*stanza).to_owned()));
    }
    assert_eq!(framed.last().map(|(k, _)| k.as_str()), Some("end"));
    assert_eq!(framed.len(), stanzas.len() + 2);
}

#[test]
fn text_between_stanzas_is_refused() {
    let input = format!("{HEADER}<a/>hello<b/>");
    assert_eq!(
        frames(&input, input.len(), XmlLimits::default()),
        Err(FrameError::TextBetweenStanzas)
    );
}

#[test]
fn a_large_stanza_is_skipped_with_its_start_tag_and_the_next_one_read() {
    let limits = XmlLimits {
        max_stanza_bytes: 100,
        ..XmlLimits::default()
    };
    let big = format!("<iq type='set' id='big'><x>{}</x></iq>", "y".repeat(500));
    let input = format!("{HEADER}{big}<iq type='result' id='next'/>");
    let framed = every_split(&input, limits).unwrap();
    assert_eq!(
        kinds(&framed),
        ["header", "skipped stanza too large", "element"]
    );
    assert_eq!(framed[1].1, "<iq type='set' id='big'>");
    assert_eq!(framed[2].1, "<iq type='result' id='next'/>");
}

#[test]
fn a_deep_stanza_is_skipped() {
    let limits = XmlLimits {
        max_depth: 3,
        ..XmlLimits::default()
    };
    let input =
        format!("{HEADER}<iq id='deep'><a><b><c/></b></a></iq><iq id='ok'><a><b/></a></iq>");
    let framed = every_split(&input, limits).unwrap();
    assert_eq!(
        kinds(&framed),
        ["header", "skipped stanza nested too deep", "element"]
    );
    assert_eq!(framed[1].1, "<iq id='deep'>");
}

#[test]
fn a_stanza_of_any_size_is_skipped_and_the_stream_goes_on() {
    let limits = XmlLimits {
        max_stanza_bytes: 10,
        ..XmlLimits::default()
    };
    // 4 MiB: far past any bound the skip could have had.
    let input = format!(
        "{HEADER}<iq id='huge'>{}</iq><iq id='next'/>",
        "z".repeat(4 << 20)
    );
    let framed = frames(&input, 4096, limits).unwrap();
    assert_eq!(
        kinds(&framed),
        ["header", "skipped stanza too large", "element"]
    );
    assert_eq!(framed[1].1, "<iq id='huge'>");
}

/// Each limit of one start tag or one stanza, crossed by a stanza that must still be answered:
/// (limits, stanza, expected kind, the start tag kept to answer it).
fn limit_cases() -> Vec<(XmlLimits, String, &'static str)> {
    let limits = XmlLimits {
        max_attribute_bytes: 64,
        max_name_bytes: 32,
        max_attributes: 4,
        max_elements: 5,
        ..XmlLimits::default()
    };
    let head = "<iq type='get' id='i1' from='a@example.test/r'>";
    vec![
        (
            limits,
            format!("{head}<foo xmlns='urn:x' a='{}'/></iq>", "v".repeat(65)),
            "skipped attribute value too long",
        ),
        (
            limits,
            format!("{head}<foo xmlns='{}'/></iq>", "u".repeat(65)),
            "skipped attribute value too long",
        ),
        (
            limits,
            format!("{head}<{} xmlns='urn:x'/></iq>", "n".repeat(40)),
            "skipped name too long",
        ),
        (
            limits,
            format!("{head}<foo xmlns='urn:x' {}='v'/></iq>", "n".repeat(40)),
            "skipped name too long",
        ),
        (
            limits,
            format!("{head}<foo xmlns='urn:x' a='1' b='2' c='3' d='4'/></iq>"),
            "skipped too many attributes",
        ),
        (
            limits,
            format!("{head}<foo xmlns='urn:x'>{}</foo></iq>", "<f/>".repeat(4)),
            "skipped too many elements",
        ),
    ]
}

#[test]
fn a_stanza_over_a_limit_of_its_tags_is_skipped_and_answerable() {
    for (limits, stanza, kind) in limit_cases() {
        let input = format!("{HEADER}{stanza}<iq type='result' id='next'/>");
        let framed = every_split(&input, limits).unwrap();
        assert_eq!(kinds(&framed), ["header", kind, "element"], "{stanza}");
        assert_eq!(
            framed[1].1, "<iq type='get' id='i1' from='a@example.test/r'>",
            "{stanza}"
        );
        assert_eq!(framed[2].1, "<iq type='result' id='next'/>");
    }
}

#[test]
fn just_within_the_limits_of_its_tags_a_stanza_is_framed() {
    let (limits, ..) = limit_cases()[0].clone();
    let stanza = format!(
        "<iq type='get' id='i1'><foo xmlns='urn:x' {name}='{value}' b='2'><f/><g/></foo></iq>",
        name = "n".repeat(28),
        value = "v".repeat(64),
    );
    let framed = every_split(&format!("{HEADER}{stanza}"), limits).unwrap();
    assert_eq!(kinds(&framed), ["header", "element"]);
    assert_eq!(framed[1].1, stanza);
}

#[test]
fn a_stanza_over_a_limit_of_its_own_start_tag_is_answerable() {
    let limits = XmlLimits {
        max_attribute_bytes: 64,
        max_attributes: 4,
        ..XmlLimits::default()
    };
    let long_value = format!(
        "<iq type='get' id='i2' from='a@example.test/r' x='{}'><foo xmlns='urn:x'/></iq>",
        "v".repeat(100)
    );
    let many =
        "<iq type='get' id='i3' from='a@example.test/r' a='1' b='2'><foo xmlns='urn:x'/></iq>";
    for stanza in [long_value.as_str(), many] {
        let framed = every_split(&format!("{HEADER}{stanza}"), limits).unwrap();
        assert_eq!(kinds(&framed)[0], "header");
        assert!(framed[1].0.starts_with("skipped"), "{framed:?}");
        let start_tag_end = stanza.find('>').unwrap() + 1;
        assert_eq!(framed[1].1, stanza[..start_tag_end], "{stanza}");
    }
}

#[test]
fn a_start_tag_is_kept_to_answer_only_up_to_the_stanza_limit() {
    let limits = XmlLimits {
        max_stanza_bytes: 4096,
        max_attribute_bytes: 64,
        ..XmlLimits::default()
    };
    let mut framer = Framer::new(limits);
    let mut buf = format!("{HEADER}<iq type='get' id='i4' x='").into_bytes();
    let Some(Frame::Header { end }) = framer.next(&buf).unwrap() else {
        panic!("no header");
    };
    buf.drain(..end);
    // An attribute value that never ends: kept while it may still be answered, then dropped.
    for _ in 0..100 {
        assert_eq!(framer.next(&buf).unwrap(), None);
        let discard = framer.discardable();
        buf.drain(..discard);
        framer.discard(discard);
        assert!(buf.len() <= 4096 + 1000, "{} bytes kept", buf.len());
        buf.extend_from_slice(&[b'v'; 1000]);
    }
    buf.extend_from_slice(b"'/>");
    assert!(matches!(
        framer.next(&buf),
        Ok(Some(Frame::Skipped {
            reason: SkipReason::AttributeTooLong,
            start_tag: None,
            ..
        }))
    ));
}

#[test]
fn the_skipped_part_is_not_kept() {
    let limits = XmlLimits {
        max_stanza_bytes: 100,
        ..XmlLimits::default()
    };
    let mut framer = Framer::new(limits);
    let mut buf = format!("{HEADER}<iq id='x'>").into_bytes();
    let Some(Frame::Header { end }) = framer.next(&buf).unwrap() else {
        panic!("no header");
    };
    buf.drain(..end);
    // 50 kB: past the stanza limit, within the hard bound.
    for _ in 0..50 {
        assert_eq!(framer.next(&buf).unwrap(), None);
        let discard = framer.discardable();
        buf.drain(..discard);
        framer.discard(discard);
        assert!(buf.len() < 1100, "{} bytes kept", buf.len());
        buf.extend_from_slice(&[b'y'; 1000]);
    }
    buf.extend_from_slice(b"</iq>");
    assert!(matches!(framer.next(&buf), Ok(Some(Frame::Skipped { .. }))));
}

/// Arbitrary input in arbitrary pieces: the framer, the fast reader and the full parser may
/// refuse it, but never panic, never hand out a range outside the buffer, and never keep more
/// than one stanza's limit; a stanza the full parser refuses costs only that stanza.
#[test]
fn arbitrary_input_is_framed_or_refused_without_panics() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    const ALPHABET: &[&[u8]] = &[
        b"<",
        b">",
        b"/",
        b"'",
        b"\"",
        b"=",
        b" ",
        b"\n",
        b"iq",
        b"a",
        b"x",
        b"!",
        b"?",
        b"-",
        b"[",
        b"]",
        b"&amp;",
        b"&",
        b";",
        b"<![CDATA[",
        b"]]>",
        b"<!--",
        b"-->",
        b"\xc3\xa9",
        b"\xff",
        b"<iq type='result' id='r'/>",
        b"</iq>",
        b"<pubsub xmlns='http://jabber.org/protocol/pubsub'>",
        b"<presence/>",
        b"<iq type='set' id='s' from='example.test'>",
        b"<a>",
        b"</a>",
    ];
    let limits = XmlLimits {
        max_stanza_bytes: 300,
        max_depth: 6,
        max_attribute_bytes: 40,
        max_name_bytes: 20,
        max_attributes: 4,
        max_elements: 12,
        ..XmlLimits::default()
    };
    let mut elements = 0;
    let mut refused = 0;
    for _ in 0..6000 {
        let mut input = HEADER.as_bytes().to_vec();
        for _ in 0..next(80) {
            input.extend_from_slice(ALPHABET[next(ALPHABET.len())]);
        }
        let mut framer = Framer::new(limits);
        // Stands for a role's fast path: takes any IQ set with one child, unread.
        let mut any_set = |set: crate::stream::fast_stanza::IqSetChild<'_, '_>| {
            set.read(|tokens, tag| crate::stream::fast_stanza::skip_rest(tokens, tag).map(Some))
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut parser = None;
        let mut rest = &input[..];
        'feed: while !rest.is_empty() {
            let take = 1 + next(rest.len().min(64));
            let discard = framer.discardable();
            assert!(discard <= buf.len());
            buf.drain(..discard);
            framer.discard(discard);
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            loop {
                let frame = match framer.next(&buf) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                };
                let end = match frame {
                    Frame::Header { end } => {
                        parser =
                            crate::stream::stanza_parser::StanzaParser::start(&buf[..end], limits)
                                .ok()
                                .map(|(parser, _)| parser);
                        end
                    }
                    Frame::Element { start, end } => {
                        elements += 1;
                        assert!(start <= end && end <= buf.len());
                        let element = &buf[start..end];
                        let fast = crate::stream::fast_stanza::read(
                            element,
                            limits.max_attribute_bytes,
                            &mut any_set,
                        );
                        let full = match (fast, parser.as_mut()) {
                            (None, Some(parser)) => Some(parser.read(element, limits)),
                            _ => None,
                        };
                        if matches!(full, Some(Err(_))) {
                            // Refused: the session starts its parser afresh and goes on.
                            refused += 1;
                            let restarted = parser.as_mut().map(|parser| parser.restart());
                            assert!(matches!(restarted, Some(Ok(()))));
                        }
                        end
                    }
                    Frame::Skipped { end, .. } | Frame::StreamEnd { end } => end,
                };
                assert!(end <= buf.len());
                buf.drain(..end);
            }
            // At most the stanza being read (up to its limit), plus what arrived last.
            assert!(
                buf.len() <= limits.max_stanza_bytes + 2 * 64,
                "{} bytes kept",
                buf.len()
            );
        }
    }
    // Enough of the inputs hold whole elements for the readers to be exercised, and some of
    // them are refused by the full parser (and survived).
    assert!(elements > 500, "{elements}");
    assert!(refused > 50, "{refused}");
}
