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
fn past_the_hard_bound_the_stream_is_given_up() {
    let limits = XmlLimits {
        max_stanza_bytes: 10,
        ..XmlLimits::default()
    };
    let input = format!("{HEADER}<iq>{}", "z".repeat(limits.hard_stanza_bytes() + 1));
    assert_eq!(frames(&input, 4096, limits), Err(FrameError::HardLimit));
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
