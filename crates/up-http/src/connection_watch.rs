//! Watching one HTTP/1 connection from outside hyper: whether a request is in progress on it,
//! and how long it has waited for its next request head.
//!
//! hyper does not say when a connection is between requests, so three observers report to a
//! [`ConnectionProgress`]: the framing tracker counts the requests that have fully arrived
//! ([`ReceivedRequests`]), [`AnsweredBody`] counts the responses hyper is done with, and
//! [`FlushWatch`] notes when hyper has handed every byte it wrote to the socket. The
//! connection is idle when all three agree: every request that arrived was answered and the
//! answers are out, with no byte of a next request. [`WatchedConnection`] reads them each time
//! hyper's connection has done what it can, keeps the registry's idle list up to date and
//! enforces the deadline for the next request head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::connection_registry::RegisteredConnection;
use crate::strict_http1::Received;

/// [`Received`] as last published by the framing tracker's reader
/// ([`StrictHttp1`](crate::strict_http1::StrictHttp1)), for [`ConnectionProgress`]. One atomic
/// word: a tag in the top two bits, the
/// request count in the rest.
#[derive(Clone, Debug)]
pub(crate) struct ReceivedRequests(Arc<AtomicU64>);

const RECEIVED_TAG_SHIFT: u32 = 62;
const RECEIVED_COUNT_MASK: u64 = (1 << RECEIVED_TAG_SHIFT) - 1;

impl ReceivedRequests {
    /// Nothing received yet.
    pub(crate) fn new() -> Self {
        Self(Arc::new(AtomicU64::new(0)))
    }

    /// Publishes how far the requests have arrived.
    pub(crate) fn publish(&self, received: Received) {
        // 2^62 requests on one connection cannot happen; the mask only keeps the tag intact.
        let word = match received {
            Received::Complete(count) => count & RECEIVED_COUNT_MASK,
            Received::InHead(count) => (1 << RECEIVED_TAG_SHIFT) | (count & RECEIVED_COUNT_MASK),
            Received::InBody => 2 << RECEIVED_TAG_SHIFT,
            Received::Refused => 3 << RECEIVED_TAG_SHIFT,
        };
        self.0.store(word, Ordering::Release);
    }

    /// How far the requests have arrived.
    pub(crate) fn get(&self) -> Received {
        let word = self.0.load(Ordering::Acquire);
        let count = word & RECEIVED_COUNT_MASK;
        match word >> RECEIVED_TAG_SHIFT {
            0 => Received::Complete(count),
            1 => Received::InHead(count),
            2 => Received::InBody,
            _ => Received::Refused,
        }
    }
}

/// What the observers of one connection have seen so far.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionProgress {
    received: ReceivedRequests,
    answers: Arc<AnswerCounts>,
}

#[derive(Debug, Default)]
struct AnswerCounts {
    /// Responses hyper is done with (their bodies dropped).
    answered: AtomicU64,
    /// `answered` as of the last flush hyper completed: hyper flushes the socket only once
    /// its own write buffer is empty, so these answers are all out.
    flushed: AtomicU64,
}

/// Where a connection is, between requests or within one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Every request that arrived is answered and the answers are out; no byte of the next
    /// request has arrived.
    Idle,
    /// As idle, except that part of the next request head has arrived.
    PartialHead,
    /// A request is in progress: its head is being read or handled, its body read, or its
    /// answer written.
    Busy,
}

impl ConnectionProgress {
    /// A connection on which nothing has happened yet.
    pub(crate) fn new() -> Self {
        Self {
            received: ReceivedRequests::new(),
            answers: Arc::new(AnswerCounts::default()),
        }
    }

    /// Where the framing tracker reports how far the requests have arrived.
    pub(crate) fn received(&self) -> ReceivedRequests {
        self.received.clone()
    }

    /// The phase, and how many responses hyper is done with.
    fn phase(&self) -> (Phase, u64) {
        // All three are written by the same task that reads them, between its polls.
        let answered = self.answers.answered.load(Ordering::Acquire);
        let flushed = self.answers.flushed.load(Ordering::Acquire);
        let phase = match self.received.get() {
            Received::Complete(count) if count == answered && flushed == answered => Phase::Idle,
            Received::InHead(count) if count == answered && flushed == answered => {
                Phase::PartialHead
            }
            _ => Phase::Busy,
        };
        (phase, answered)
    }
}

/// A connection's socket as hyper sees it, noting each completed flush in its
/// [`ConnectionProgress`]. Reads and writes pass through untouched.
pub(crate) struct FlushWatch<T> {
    inner: T,
    answers: Arc<AnswerCounts>,
}

impl<T> FlushWatch<T> {
    /// `inner`, reporting to `progress`.
    pub(crate) fn new(inner: T, progress: &ConnectionProgress) -> Self {
        Self {
            inner,
            answers: Arc::clone(&progress.answers),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FlushWatch<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FlushWatch<T> {
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
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            let answered = this.answers.answered.load(Ordering::Acquire);
            this.answers.flushed.store(answered, Ordering::Release);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that counts its response as answered once hyper drops it, which it does
/// when the body is written out (or the connection failed).
pub(crate) struct AnsweredBody<B> {
    inner: B,
    answers: Arc<AnswerCounts>,
}

impl<B> AnsweredBody<B> {
    /// `inner`, counted in `progress`.
    pub(crate) fn new(inner: B, progress: &ConnectionProgress) -> Self {
        Self {
            inner,
            answers: Arc::clone(&progress.answers),
        }
    }
}

impl<B> Drop for AnsweredBody<B> {
    fn drop(&mut self) {
        self.answers.answered.fetch_add(1, Ordering::AcqRel);
    }
}

impl<B: Body + Unpin> Body for AnsweredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a [`WatchedConnection`] ended.
#[derive(Debug)]
pub(crate) enum Watched {
    /// hyper's connection ended by itself.
    Ended(hyper::Result<()>),
    /// Part of a request head arrived, but not all of it within the head timeout.
    HeadTimedOut,
    /// No byte of a next request arrived within the head timeout.
    IdleTimedOut,
}

/// hyper's connection `C`, watched: its phase is read after each poll, the registry learns
/// when it becomes idle or busy, and the wait for each request head is limited.
pub(crate) struct WatchedConnection<C> {
    connection: C,
    progress: ConnectionProgress,
    registered: RegisteredConnection,
    phase: Phase,
    /// `answered` when the current wait for a request head began.
    waiting_after: u64,
    head_deadline: Pin<Box<Sleep>>,
    header_read_timeout: Duration,
}

impl<C> WatchedConnection<C> {
    /// `connection`, just accepted: idle, waiting for its first request head.
    pub(crate) fn new(
        connection: C,
        progress: ConnectionProgress,
        mut registered: RegisteredConnection,
        header_read_timeout: Duration,
    ) -> Self {
        registered.mark_idle();
        Self {
            connection,
            progress,
            registered,
            phase: Phase::Idle,
            waiting_after: 0,
            head_deadline: Box::pin(tokio::time::sleep(header_read_timeout)),
            header_read_timeout,
        }
    }

    /// The phase as of the last poll.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The connection's place in the registry.
    pub(crate) fn registered_mut(&mut self) -> &mut RegisteredConnection {
        &mut self.registered
    }

    /// hyper's connection, unwatched; the registry entry stays until the caller drops it.
    pub(crate) fn into_parts(self) -> (C, RegisteredConnection) {
        (self.connection, self.registered)
    }

    /// Reads the phase and updates the registry and the head deadline to it.
    fn observe(&mut self) {
        let (phase, answered) = self.progress.phase();
        match phase {
            Phase::Busy => {
                if self.phase != Phase::Busy {
                    self.registered.mark_busy();
                }
            }
            Phase::Idle | Phase::PartialHead => {
                // A new wait begins after each answer, even one that came and went between
                // two looks.
                let new_wait = self.phase == Phase::Busy || answered != self.waiting_after;
                if new_wait {
                    self.waiting_after = answered;
                    self.head_deadline
                        .as_mut()
                        .reset(Instant::now() + self.header_read_timeout);
                }
                if phase == Phase::Idle && (new_wait || self.phase != Phase::Idle) {
                    self.registered.mark_idle();
                } else if phase == Phase::PartialHead && self.phase == Phase::Idle {
                    self.registered.mark_busy();
                }
            }
        }
        self.phase = phase;
    }
}

impl<C: Future<Output = hyper::Result<()>> + Unpin> Future for WatchedConnection<C> {
    type Output = Watched;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Watched> {
        let this = self.get_mut();
        if let Poll::Ready(result) = Pin::new(&mut this.connection).poll(cx) {
            return Poll::Ready(Watched::Ended(result));
        }
        this.observe();
        let timed_out = match this.phase {
            Phase::Busy => return Poll::Pending,
            Phase::Idle => Watched::IdleTimedOut,
            Phase::PartialHead => Watched::HeadTimedOut,
        };
        match this.head_deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(timed_out),
            Poll::Pending => Poll::Pending,
        }
    }
}
