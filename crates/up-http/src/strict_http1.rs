//! Refusing HTTP/1 requests whose framing a front end could read differently from hyper.
//!
//! hyper accepts some request shapes that RFC 9112 lets a server refuse and that open the way
//! to request smuggling when a reverse proxy in front parses them another way: lines ending in
//! a bare LF, `Content-Length` together with `Transfer-Encoding`, and transfer codings other
//! than one `chunked`. hyper does not show them to the service (it drops the `Content-Length`
//! of such a request), so [`StrictHttp1`] reads the connection's bytes as hyper reads them,
//! follows the framing of every request on the connection itself ([`FramingTracker`]) and
//! marks the first request whose framing is faulty in [`FramingRefusals`]. The service answers
//! that request, and any after it, with [`refusal`]: 400 and `Connection: close`.
//!
//! The tracker always sees a request's head before hyper hands the request to the service:
//! hyper can only parse bytes it has read, and every byte it reads passes the tracker first.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::connection_watch::ReceivedRequests;
use crate::errors::json_error;

/// The longest request head accepted, from the request line through the empty line; a longer
/// one is refused. It bounds what the tracker keeps of a head that arrives in several reads.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// At most this many header fields in a head, as hyper's default: hyper refuses more.
const MAX_HEADERS: usize = 100;

/// The head buffer keeps its allocation between requests up to this size; a larger one (after
/// an unusually long head) is freed.
const RETAINED_HEAD_CAPACITY: usize = 4096;

/// Why a request's framing is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingViolation {
    /// A line of the head or of the chunked framing ends in LF without CR.
    #[error("a line ends in a bare LF")]
    BareLf,
    /// A CR is not followed by LF.
    #[error("a CR is not followed by LF")]
    LoneCr,
    /// The head is not a valid HTTP/1 request head.
    #[error("malformed request head: {0}")]
    MalformedHead(httparse::Error),
    /// The head parses, but not as ending at its first empty line.
    #[error("the request head does not end at its first empty line")]
    HeadEndMismatch,
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("the request head is longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// Both `Content-Length` and `Transfer-Encoding` are present.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    /// A `Content-Length` is not a decimal number, or two of them differ.
    #[error("invalid or conflicting Content-Length")]
    InvalidContentLength,
    /// `Transfer-Encoding` is anything but one `chunked`.
    #[error("Transfer-Encoding other than a single chunked")]
    TransferEncodingNotChunked,
    /// `Transfer-Encoding` on an HTTP/1.0 request.
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    /// A chunk's size line or the CRLF after its data is malformed.
    #[error("malformed chunk framing")]
    MalformedChunk,
    /// A chunk size does not fit 64 bits.
    #[error("chunk size overflows")]
    ChunkSizeOverflow,
}

/// The first faulty request on a connection: its index (heads counted from 0) and the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The index of the request, counting every request head on the connection from 0.
    pub(crate) request: u64,
    /// What is wrong with its framing.
    pub(crate) violation: FramingViolation,
}

/// How far the requests on a connection have arrived, by the tracker's reading of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Every byte read so far belongs to one of this many whole requests.
    Complete(u64),
    /// This many whole requests, then part of the next one's head (or of an empty line
    /// before it).
    InHead(u64),
    /// Part of a request body: its head was read, not yet all of it.
    InBody,
    /// A request was refused; the bytes after it are not followed.
    Refused,
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes; 0 when neither `Content-Length` nor `Transfer-Encoding` is present.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// Where in the chunked coding (RFC 9112 §7.1) the next byte belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// The first digit of a chunk size.
    SizeStart,
    /// More digits of a chunk size.
    Size { size: u64 },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace { size: u64 },
    /// A chunk extension, up to CR.
    Extension { size: u64 },
    /// The LF ending the size line.
    SizeLf { size: u64 },
    /// Chunk data, `left` bytes still to come.
    Data { left: u64 },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    /// Within a trailer line, up to CR.
    TrailerLine,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
}

/// Where in the connection's byte stream the tracker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before a request line; `after_cr` when the last byte was the CR of an empty line.
    BetweenRequests { after_cr: bool },
    /// In a request head, `line` bytes into its current line.
    Head { line: usize },
    /// In a body of known length, `left` bytes still to come.
    Body { left: u64 },
    /// In a chunked body.
    Chunked(Chunk),
    /// A request was refused; nothing more is followed.
    Refused(Refusal),
}

/// Follows the framing of the HTTP/1 requests in a connection's byte stream, fed in pieces as
/// they are read, and finds the first request whose framing is faulty.
///
/// The verdict does not depend on how the stream is split into pieces. What it keeps is
/// bounded by [`MAX_HEAD_BYTES`]; it never panics on any input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FramingTracker {
    state: State,
    /// The index of the request the next bytes belong to.
    request: u64,
    /// The head read so far, kept only while a head spans reads.
    head: Vec<u8>,
}

impl FramingTracker {
    /// A tracker at the start of a connection.
    pub(crate) fn new() -> Self {
        Self {
            state: State::BetweenRequests { after_cr: false },
            request: 0,
            head: Vec::new(),
        }
    }

    /// The refusal, if a faulty request has been found.
    #[cfg(test)]
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        match self.state {
            State::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// How far the requests have arrived, after the bytes followed so far.
    pub(crate) fn received(&self) -> Received {
        match self.state {
            State::BetweenRequests { after_cr: false } => Received::Complete(self.request),
            State::BetweenRequests { after_cr: true } | State::Head { .. } => {
                Received::InHead(self.request)
            }
            State::Body { .. } | State::Chunked(_) => Received::InBody,
            State::Refused(_) => Received::Refused,
        }
    }

    /// Follows `bytes`, the next bytes read from the connection. Returns the refusal when
    /// these bytes reveal the first faulty request; after that, bytes are no longer looked at.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Option<Refusal> {
        if matches!(self.state, State::Refused(_)) {
            return None;
        }
        while !bytes.is_empty() {
            match self.step(bytes) {
                Ok(used) => bytes = bytes.get(used..).unwrap_or_default(),
                Err(violation) => {
                    let refusal = Refusal {
                        request: self.request,
                        violation,
                    };
                    self.state = State::Refused(refusal);
                    self.head = Vec::new();
                    return Some(refusal);
                }
            }
        }
        None
    }

    /// Follows a prefix of `bytes` (not empty) and returns its length: at least one byte,
    /// unless the state changed to one that takes the next.
    fn step(&mut self, bytes: &[u8]) -> Result<usize, FramingViolation> {
        match self.state {
            State::BetweenRequests { after_cr } => self.between_requests(after_cr, bytes),
            State::Head { line } => self.read_head(line, bytes),
            State::Body { left } => {
                let taken = take(left, bytes);
                let left = left - taken as u64;
                if left == 0 {
                    self.finish_request();
                } else {
                    self.state = State::Body { left };
                }
                Ok(taken)
            }
            State::Chunked(chunk) => self.read_chunked(chunk, bytes),
            State::Refused(_) => Ok(bytes.len()),
        }
    }

    fn between_requests(
        &mut self,
        after_cr: bool,
        bytes: &[u8],
    ) -> Result<usize, FramingViolation> {
        let Some(&byte) = bytes.first() else {
            return Ok(0);
        };
        // RFC 9112 §2.2: empty lines before a request line are ignored (as httparse does),
        // but they too must end in CRLF.
        match (after_cr, byte) {
            (true, b'\n') => {
                self.state = State::BetweenRequests { after_cr: false };
                Ok(1)
            }
            (true, _) => Err(FramingViolation::LoneCr),
            (false, b'\r') => {
                self.state = State::BetweenRequests { after_cr: true };
                Ok(1)
            }
            (false, b'\n') => Err(FramingViolation::BareLf),
            (false, _) => self.read_head(0, bytes),
        }
    }

    /// Reads head bytes: every LF must follow a CR (RFC 9112 §2.2), and the first empty line
    /// ends the head, which is then parsed for the body's framing.
    fn read_head(&mut self, line: usize, bytes: &[u8]) -> Result<usize, FramingViolation> {
        // Looking no further than the cap for the head's end makes the verdict on a long head
        // the same however its reads are split.
        let room = MAX_HEAD_BYTES.saturating_sub(self.head.len());
        let window = bytes.get(..room).unwrap_or(bytes);
        let mut line = line;
        let mut at = 0;
        while let Some(offset) = window
            .get(at..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        {
            let lf = at + offset;
            let before = match lf.checked_sub(1) {
                Some(cr) => window.get(cr).copied(),
                None => self.head.last().copied(),
            };
            if before != Some(b'\r') {
                return Err(FramingViolation::BareLf);
            }
            if line + offset == 1 {
                // An empty line: the head ends with this LF.
                let end = lf + 1;
                let tail = window.get(..end).unwrap_or(window);
                let framing = if self.head.is_empty() {
                    framing_of(tail)
                } else {
                    self.keep(tail);
                    let framing = framing_of(&self.head);
                    self.release_head();
                    framing
                }?;
                self.start_body(framing);
                return Ok(end);
            }
            line = 0;
            at = lf + 1;
        }
        if window.len() < bytes.len() {
            return Err(FramingViolation::HeadTooLarge);
        }
        self.keep(window);
        self.state = State::Head {
            line: line + (window.len() - at),
        };
        Ok(window.len())
    }

    /// Appends to the kept head, growing it no further than [`MAX_HEAD_BYTES`] (the caller
    /// never passes more than fits).
    fn keep(&mut self, bytes: &[u8]) {
        let needed = self.head.len() + bytes.len();
        if needed > self.head.capacity() {
            let target = self
                .head
                .capacity()
                .saturating_mul(2)
                .min(MAX_HEAD_BYTES)
                .max(needed);
            self.head.reserve_exact(target - self.head.len());
        }
        self.head.extend_from_slice(bytes);
    }

    fn release_head(&mut self) {
        if self.head.capacity() > RETAINED_HEAD_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }

    fn start_body(&mut self, framing: Framing) {
        match framing {
            Framing::Length(0) => self.finish_request(),
            Framing::Length(left) => self.state = State::Body { left },
            Framing::Chunked => self.state = State::Chunked(Chunk::SizeStart),
        }
    }

    fn finish_request(&mut self) {
        self.request = self.request.saturating_add(1);
        self.state = State::BetweenRequests { after_cr: false };
    }

    /// Follows the chunked coding as RFC 9112 §7.1 has it and as hyper decodes it, except
    /// that a bare LF, which hyper takes inside a trailer line, is refused there too.
    fn read_chunked(&mut self, chunk: Chunk, bytes: &[u8]) -> Result<usize, FramingViolation> {
        use FramingViolation::{BareLf, ChunkSizeOverflow, LoneCr, MalformedChunk};
        match chunk {
            Chunk::Data { left } => {
                let taken = take(left, bytes);
                let left = left - taken as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data { left }
                });
                return Ok(taken);
            }
            Chunk::Extension { size } => {
                return self.skip_to_cr(bytes, Chunk::SizeLf { size });
            }
            Chunk::TrailerLine => return self.skip_to_cr(bytes, Chunk::TrailerLf),
            _ => {}
        }
        let Some(&byte) = bytes.first() else {
            return Ok(0);
        };
        if let (Chunk::Size { size }, Some(digit)) = (chunk, hex_digit(byte)) {
            let size = size
                .checked_mul(16)
                .and_then(|size| size.checked_add(digit))
                .ok_or(ChunkSizeOverflow)?;
            self.state = State::Chunked(Chunk::Size { size });
            return Ok(1);
        }
        let next = match (chunk, byte) {
            (Chunk::SizeStart, _) => Chunk::Size {
                size: hex_digit(byte).ok_or(MalformedChunk)?,
            },
            (Chunk::Size { size } | Chunk::SizeSpace { size }, b' ' | b'\t') => {
                Chunk::SizeSpace { size }
            }
            (Chunk::Size { size } | Chunk::SizeSpace { size }, b';') => Chunk::Extension { size },
            (Chunk::Size { size } | Chunk::SizeSpace { size }, b'\r') => Chunk::SizeLf { size },
            (Chunk::Size { .. } | Chunk::SizeSpace { .. } | Chunk::DataCr, b'\n') => {
                return Err(BareLf);
            }
            (Chunk::Size { .. } | Chunk::SizeSpace { .. }, _) => return Err(MalformedChunk),
            (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data { left: size },
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            // The data runs past its declared size.
            (Chunk::DataCr, _) => return Err(MalformedChunk),
            (Chunk::DataLf, b'\n') => Chunk::SizeStart,
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart, b'\n') => return Err(BareLf),
            (Chunk::TrailerStart, _) => Chunk::TrailerLine,
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::EndLf, b'\n') => {
                self.finish_request();
                return Ok(1);
            }
            (Chunk::SizeLf { .. } | Chunk::DataLf | Chunk::TrailerLf | Chunk::EndLf, _) => {
                return Err(LoneCr);
            }
            (Chunk::Data { .. } | Chunk::Extension { .. } | Chunk::TrailerLine, _) => {
                // Handled above; kept here so the match stays exhaustive without a panic.
                return Err(MalformedChunk);
            }
        };
        self.state = State::Chunked(next);
        Ok(1)
    }

    /// Skips to the CR ending a line of the chunked framing, then expects `after_cr`.
    fn skip_to_cr(&mut self, bytes: &[u8], after_cr: Chunk) -> Result<usize, FramingViolation> {
        match memchr::memchr2(b'\r', b'\n', bytes) {
            None => Ok(bytes.len()),
            Some(at) if bytes.get(at) == Some(&b'\r') => {
                self.state = State::Chunked(after_cr);
                Ok(at + 1)
            }
            Some(_) => Err(FramingViolation::BareLf),
        }
    }
}

/// How many of `bytes` a body with `left` bytes still to come takes.
fn take(left: u64, bytes: &[u8]) -> usize {
    usize::try_from(left).map_or(bytes.len(), |left| left.min(bytes.len()))
}

fn hex_digit(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

/// The framing of the body after `head` (a complete head, through its empty line), or why it
/// is refused.
fn framing_of(head: &[u8]) -> Result<Framing, FramingViolation> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, &mut headers) {
        Ok(httparse::Status::Complete(length)) if length == head.len() => {}
        Ok(_) => return Err(FramingViolation::HeadEndMismatch),
        Err(error) => return Err(FramingViolation::MalformedHead(error)),
    }
    let mut length: Option<u64> = None;
    let mut transfer_encodings = 0_usize;
    let mut chunked = false;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3 item 5: several differing lengths, or one that is not a number,
            // make the framing invalid. Like hyper, only plain digits are taken (no lists).
            let value =
                decimal(field.value.trim_ascii()).ok_or(FramingViolation::InvalidContentLength)?;
            if length.is_some_and(|length| length != value) {
                return Err(FramingViolation::InvalidContentLength);
            }
            length = Some(value);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
            chunked = field.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }
    if transfer_encodings == 0 {
        // RFC 9112 §6.3 item 7: a request with neither has no body.
        return Ok(Framing::Length(length.unwrap_or(0)));
    }
    if request.version == Some(0) {
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        return Err(FramingViolation::TransferEncodingOnHttp10);
    }
    if length.is_some() {
        // RFC 9112 §6.1: a server may reject a request with both; hyper would use the
        // chunked framing while a front end might have used the length.
        return Err(FramingViolation::LengthAndTransferEncoding);
    }
    if transfer_encodings > 1 || !chunked {
        // RFC 9112 §6.1 and §7: chunked must be applied exactly once, and last; other codings
        // are not taken here (hyper would pass `gzip, chunked` bodies on still encoded), so
        // anything but a single `chunked` is refused.
        return Err(FramingViolation::TransferEncodingNotChunked);
    }
    Ok(Framing::Chunked)
}

/// `digits` as a decimal number: ASCII digits only, at least one, fitting 64 bits.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |value, &digit| {
        let digit = char::from(digit).to_digit(10)?;
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

const NO_REFUSAL: u64 = u64::MAX;

/// The index of the first request on a connection whose framing is faulty, shared between
/// [`StrictHttp1`], which finds it, and the service, which refuses it and every later request.
#[derive(Clone, Debug)]
pub(crate) struct FramingRefusals(Arc<AtomicU64>);

impl FramingRefusals {
    /// No request refused yet.
    pub(crate) fn new() -> Self {
        Self(Arc::new(AtomicU64::new(NO_REFUSAL)))
    }

    fn refuse_from(&self, request: u64) {
        self.0.fetch_min(request, Ordering::Release);
    }

    /// Whether the request with index `request` (counted from 0 on the connection, in the
    /// order hyper hands requests over) must be refused.
    pub(crate) fn refuses(&self, request: u64) -> bool {
        let from = self.0.load(Ordering::Acquire);
        from != NO_REFUSAL && request >= from
    }
}

/// The answer to a request whose framing is refused: 400 with a JSON error, and
/// `Connection: close`, which makes hyper close the connection after it.
pub(crate) fn refusal() -> Response {
    let mut response = json_error(StatusCode::BAD_REQUEST, "malformed request framing");
    close_after(&mut response);
    response
}

/// Makes hyper close the connection once `response` is sent (RFC 9112 §9.6).
pub(crate) fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// A connection whose incoming bytes pass a [`FramingTracker`] on their way to hyper; the
/// first faulty request found is recorded in the [`FramingRefusals`] given, and how far the
/// requests have arrived in the [`ReceivedRequests`] given. Writes pass through untouched.
pub(crate) struct StrictHttp1<T> {
    inner: T,
    tracker: FramingTracker,
    refusals: FramingRefusals,
    received: ReceivedRequests,
}

impl<T> StrictHttp1<T> {
    /// `inner`, with the framing of the requests read from it followed from its start.
    pub(crate) fn new(inner: T, refusals: FramingRefusals, received: ReceivedRequests) -> Self {
        Self {
            inner,
            tracker: FramingTracker::new(),
            refusals,
            received,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StrictHttp1<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().get(before..).unwrap_or_default();
        if let Some(refusal) = this.tracker.feed(read) {
            tracing::debug!(
                request = refusal.request,
                violation = %refusal.violation,
                "refusing an HTTP request whose framing is faulty"
            );
            this.refusals.refuse_from(refusal.request);
        }
        if !read.is_empty() {
            this.received.publish(this.tracker.received());
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StrictHttp1<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "strict_http1_tests.rs"]
mod tests;
