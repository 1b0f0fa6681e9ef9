//! The framing tracker on whole streams, on the same streams split every way, and on
//! arbitrary bytes in arbitrary pieces.

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

use super::*;
use crate::connection_watch::ReceivedRequests;

/// The tracker after `input` arrives in pieces of `piece` bytes.
fn tracked_in_pieces(input: &[u8], piece: usize) -> FramingTracker {
    let mut tracker = FramingTracker::new();
    for part in input.chunks(piece.max(1)) {
        tracker.feed(part);
    }
    tracker
}

fn tracked(input: &[u8]) -> FramingTracker {
    tracked_in_pieces(input, input.len())
}

/// The tracker after `input`, checked to be the same for every split of it: pieces of every
/// size, and two pieces split at every byte.
fn every_split(input: &[u8]) -> FramingTracker {
    let whole = tracked(input);
    for piece in 1..input.len() {
        assert_eq!(tracked_in_pieces(input, piece), whole, "pieces of {piece}");
    }
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let mut tracker = FramingTracker::new();
        tracker.feed(first);
        tracker.feed(second);
        assert_eq!(tracker, whole, "split at {split}");
    }
    whole
}

/// The first refusal in `input`, whatever its split, as (request index, violation).
fn refusal_in(input: &[u8]) -> Option<(u64, FramingViolation)> {
    every_split(input)
        .refusal()
        .map(|refusal| (refusal.request, refusal.violation))
}

/// How many requests `input` holds, whatever its split, checked to hold no faulty one.
fn requests_in(input: &[u8]) -> u64 {
    let tracker = every_split(input);
    assert_eq!(tracker.refusal(), None, "{}", input.escape_ascii());
    tracker.request
}

const GET: &[u8] = b"GET /push/abc HTTP/1.1\r\nHost: a\r\n\r\n";

fn with_get(request: &[u8]) -> Vec<u8> {
    [request, GET].concat()
}

#[test]
fn well_framed_requests_are_counted_and_none_refused() {
    assert_eq!(requests_in(GET), 1);
    assert_eq!(requests_in(&[GET, GET, GET].concat()), 3);
    assert_eq!(
        requests_in(&with_get(
            b"POST /push/t HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe\n\rl"
        )),
        2
    );
    assert_eq!(
        requests_in(&with_get(
            b"POST /push/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n10;name=\"v;\\\"x\" \r\n0123456789abcdef\r\n0\r\n\r\n"
        )),
        2
    );
    // Chunk extensions, spaces after the size, trailers, upper-case hex.
    assert_eq!(
        requests_in(&with_get(
            b"POST /x HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n\
              A \t;ext\r\n0123456789\r\n0;last\r\nTrailer: t\r\nOther: u\r\n\r\n"
        )),
        2
    );
    // Empty lines before a request line (RFC 9112 §2.2), the same length twice, HTTP/1.0.
    assert_eq!(
        requests_in(&with_get(
            b"\r\n\r\nPOST /x HTTP/1.0\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok"
        )),
        2
    );
    // A body that looks like a faulty head is only a body.
    assert_eq!(
        requests_in(&with_get(
            b"POST /x HTTP/1.1\r\nContent-Length: 13\r\n\r\nGET /\n\nX: y\n\n"
        )),
        2
    );
}

#[test]
fn content_length_with_transfer_encoding_is_refused_in_either_order() {
    for request in [
        &b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        assert_eq!(
            refusal_in(&with_get(request)),
            Some((0, FramingViolation::LengthAndTransferEncoding))
        );
    }
}

#[test]
fn bare_lf_anywhere_in_the_framing_is_refused() {
    for (input, index) in [
        (&b"GET / HTTP/1.1\nHost: a\n\n"[..], 0),
        (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 0),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 0),
        (b"\nGET / HTTP/1.1\r\n\r\n", 0),
        (
            b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\n\r\n\r\nx",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
            0,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n",
            0,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\nx\r\n0\r\n\r\n",
            0,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\nC: d\r\n\r\n",
            0,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
            0,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0 \n\r\n",
            0,
        ),
    ] {
        assert_eq!(
            refusal_in(input),
            Some((index, FramingViolation::BareLf)),
            "{}",
            input.escape_ascii()
        );
    }
}

#[test]
fn transfer_codings_other_than_one_chunked_are_refused() {
    for codings in [
        &b"Transfer-Encoding: gzip, chunked\r\n"[..],
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: identity\r\n",
        b"Transfer-Encoding: chunked;q=1\r\n",
        b"Transfer-Encoding:\r\n",
    ] {
        let request = [b"POST /x HTTP/1.1\r\n", codings, b"\r\n0\r\n\r\n"].concat();
        assert_eq!(
            refusal_in(&request),
            Some((0, FramingViolation::TransferEncodingNotChunked)),
            "{}",
            codings.escape_ascii()
        );
    }
    assert_eq!(
        refusal_in(b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Some((0, FramingViolation::TransferEncodingOnHttp10))
    );
}

#[test]
fn lengths_that_are_not_one_number_are_refused() {
    for length in [
        &b"Content-Length: 1\r\nContent-Length: 2\r\n"[..],
        b"Content-Length: +1\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 1, 1\r\n",
        b"Content-Length: 0x1\r\n",
        b"Content-Length:\r\n",
        b"Content-Length: 18446744073709551616\r\n",
    ] {
        let request = [b"POST /x HTTP/1.1\r\n", length, b"\r\nx"].concat();
        assert_eq!(
            refusal_in(&request),
            Some((0, FramingViolation::InvalidContentLength)),
            "{}",
            length.escape_ascii()
        );
    }
}

#[test]
fn other_faults_are_refused_and_counted_from_the_request_they_are_in() {
    let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (body, violation) in [
        (&b"x\r\n"[..], FramingViolation::MalformedChunk),
        (b"1x\r\n", FramingViolation::MalformedChunk),
        (b"1 2\r\n", FramingViolation::MalformedChunk),
        (b"1\r\nxy\r\n", FramingViolation::MalformedChunk),
        (b"1\rx", FramingViolation::LoneCr),
        (b"1\r\nx\rx", FramingViolation::LoneCr),
        (b"0\r\n\rx", FramingViolation::LoneCr),
        (b"0\r\nA: b\rc", FramingViolation::LoneCr),
        (
            b"10000000000000000\r\n",
            FramingViolation::ChunkSizeOverflow,
        ),
    ] {
        let input = [GET, chunked, body].concat();
        assert_eq!(
            refusal_in(&input),
            Some((1, violation)),
            "{}",
            body.escape_ascii()
        );
    }
    assert_eq!(
        refusal_in(&[GET, b"\r\rGET / HTTP/1.1\r\n\r\n"].concat()),
        Some((1, FramingViolation::LoneCr))
    );
    assert!(matches!(
        refusal_in(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        Some((0, FramingViolation::MalformedHead(_)))
    ));
    assert!(matches!(
        refusal_in(b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n"),
        Some((0, FramingViolation::MalformedHead(_)))
    ));
    assert!(matches!(
        refusal_in(b"GET / HTTP/2.0\r\n\r\n"),
        Some((0, FramingViolation::MalformedHead(_)))
    ));
}

#[test]
fn nothing_after_a_refusal_is_looked_at() {
    let mut tracker = FramingTracker::new();
    let refusal = tracker.feed(b"GET / HTTP/1.1\nHost: a\n\n");
    assert_eq!(
        refusal,
        Some(Refusal {
            request: 0,
            violation: FramingViolation::BareLf
        })
    );
    assert_eq!(tracker.feed(GET), None);
    assert_eq!(tracker.refusal(), refusal);
    assert_eq!(tracker.request, 0);
}

/// A head of `length` bytes: a request line, one long header and the empty line.
fn head_of(length: usize) -> Vec<u8> {
    let start = b"GET / HTTP/1.1\r\nX: ";
    let end = b"\r\n\r\n";
    let mut head = start.to_vec();
    head.resize(length - end.len(), b'a');
    head.extend_from_slice(end);
    head
}

#[test]
fn a_head_is_kept_no_longer_than_the_cap_however_it_arrives() {
    let mut rng = StdRng::seed_from_u64(0x5eed_4ead);
    for (length, fits) in [
        (MAX_HEAD_BYTES, true),
        (MAX_HEAD_BYTES + 1, false),
        (3 * MAX_HEAD_BYTES, false),
    ] {
        let input = with_get(&head_of(length));
        let whole = tracked(&input);
        let expected = if fits {
            None
        } else {
            Some(FramingViolation::HeadTooLarge)
        };
        assert_eq!(whole.refusal().map(|r| r.violation), expected, "{length}");
        for _ in 0..20 {
            let mut tracker = FramingTracker::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let piece = rng.random_range(1..=rest.len().min(3 * MAX_HEAD_BYTES / 4));
                let (part, after) = rest.split_at(piece);
                tracker.feed(part);
                assert!(tracker.head.capacity() <= MAX_HEAD_BYTES);
                rest = after;
            }
            assert_eq!(tracker, whole, "{length}");
        }
    }
    // A head longer than the cap is refused before its end arrives.
    let mut tracker = FramingTracker::new();
    tracker.feed(&head_of(MAX_HEAD_BYTES + 100)[..MAX_HEAD_BYTES + 1]);
    assert_eq!(
        tracker.refusal().map(|r| r.violation),
        Some(FramingViolation::HeadTooLarge)
    );
}

/// Pieces that well-framed and faulty streams are made of.
const PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n",
    b"POST /push/t HTTP/1.1\r\n",
    b"POST / HTTP/1.0\r\n",
    b"Host: a\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"abc",
    b"3\r\nabc\r\n",
    b"0\r\n\r\n",
    b"1;x=y\r\n",
    b"0\r\nT: v\r\n",
    b":",
    b" ",
    b";",
    b"f",
    b"\x00",
    b"\xff",
];

fn arbitrary_stream(rng: &mut StdRng) -> Vec<u8> {
    let mut stream = Vec::new();
    match rng.random_range(0..3) {
        // Pieces in any order.
        0 => {
            for _ in 0..rng.random_range(0..40) {
                stream.extend_from_slice(PIECES[rng.random_range(0..PIECES.len())]);
            }
        }
        // Well-framed requests with a few bytes changed, added or removed.
        1 => {
            for _ in 0..rng.random_range(1..5) {
                stream.extend_from_slice(match rng.random_range(0..3) {
                    0 => GET,
                    1 => b"POST /push/t HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                    _ => b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: v\r\n\r\n",
                });
            }
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..=stream.len());
                let byte =
                    [b'\r', b'\n', b'0', b'a', b' ', b';', rng.random()][rng.random_range(0..7)];
                match rng.random_range(0..3) {
                    0 => stream.insert(at, byte),
                    1 if at < stream.len() => {
                        stream.remove(at);
                    }
                    _ if at < stream.len() => stream[at] = byte,
                    _ => {}
                }
            }
        }
        // Any bytes.
        _ => {
            for _ in 0..rng.random_range(0..200) {
                stream.push(rng.random());
            }
        }
    }
    stream
}

#[test]
fn arbitrary_bytes_in_arbitrary_pieces_get_the_same_verdict() {
    let mut rng = StdRng::seed_from_u64(0x0b5e_55ed);
    let mut refused = 0;
    for _ in 0..20_000 {
        let stream = arbitrary_stream(&mut rng);
        let whole = tracked(&stream);
        refused += usize::from(whole.refusal().is_some());
        for _ in 0..4 {
            let mut tracker = FramingTracker::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let piece = rng.random_range(1..=rest.len());
                let (part, after) = rest.split_at(piece);
                tracker.feed(part);
                rest = after;
            }
            assert_eq!(tracker, whole, "{}", stream.escape_ascii());
            assert!(tracker.head.capacity() <= MAX_HEAD_BYTES);
        }
    }
    // The streams exercise both verdicts.
    assert!(refused > 1000 && refused < 19_000, "{refused}");
}

#[test]
fn the_refusals_start_at_the_first_faulty_request() {
    let refusals = FramingRefusals::new();
    assert!(!refusals.refuses(0));
    refusals.refuse_from(3);
    refusals.refuse_from(5);
    assert!(!refusals.refuses(2));
    assert!(refusals.refuses(3));
    assert!(refusals.refuses(4));
    refusals.refuse_from(1);
    assert!(refusals.refuses(1));
    assert!(!refusals.refuses(0));
}

#[test]
fn received_tells_whole_requests_from_partial_ones() {
    let mut tracker = FramingTracker::new();
    let received = ReceivedRequests::new();
    assert_eq!(received.get(), Received::Complete(0));
    let steps: [(&[u8], Received); 7] = [
        (b"\r", Received::InHead(0)),
        (b"\nGET / HTTP/1.1\r\nHost: a\r\n", Received::InHead(0)),
        (b"\r\n", Received::Complete(1)),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab",
            Received::InBody,
        ),
        (b"c", Received::Complete(2)),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET",
            Received::InHead(3),
        ),
        (b" / HTTP/1.1\nHost: a\r\n\r\n", Received::Refused),
    ];
    for (bytes, expected) in steps {
        tracker.feed(bytes);
        assert_eq!(tracker.received(), expected, "{}", bytes.escape_ascii());
        received.publish(tracker.received());
        assert_eq!(received.get(), expected);
    }
    // The count survives the round trip through the atomic word, up to its width.
    for count in [0, 1, 1 << 40, (1 << 62) - 1] {
        for state in [Received::Complete(count), Received::InHead(count)] {
            received.publish(state);
            assert_eq!(received.get(), state);
        }
    }
}
