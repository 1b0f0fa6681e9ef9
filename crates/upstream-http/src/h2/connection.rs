//! One HTTP/2 connection: the stream opened below ([`Connector`]), the preface, then the task
//! that drives the connection and keeps it alive with PINGs. A connection is handed out once
//! its first PING is answered: the server's SETTINGS come before that answer (RFC 9113 §3.4),
//! so h2 then knows how many streams the server allows at once.
//!
//! Hand-written on the `h2` crate rather than hyper's `client::conn::http2`: the pool needs
//! the server's `SETTINGS_MAX_CONCURRENT_STREAMS` per connection (hyper does not expose it),
//! the first-PING wait above, and the [`Coalesced`] polling that lets one write carry many
//! requests; hyper also hands every request to the connection task through a channel.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep_until, timeout};

use crate::connect::{Connector, Transport};
use crate::error::ConnectFailure;
use crate::metrics::Metrics;
use crate::settings::{KeepAlive, Versions};

/// The connection-level receive window: room for a thousand small answers at once, so a burst
/// of answers is never held back waiting for the readers.
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The most header bytes accepted in one answer.
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Why no HTTP/2 connection is to be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The connection failed.
    Failed(ConnectFailure),
    /// The peer speaks HTTP/1.1: chosen by ALPN or shown by its answer to the h2c preface
    /// (`confirmed`), or only suggested by a close during the preface.
    Http1 {
        /// Whether the peer said so, rather than closed.
        confirmed: bool,
    },
}

/// What opening HTTP/2 connections needs, prepared once.
pub(crate) struct Dialer {
    pub(crate) connector: Arc<Connector>,
    pub(crate) versions: Versions,
    pub(crate) keep_alive: KeepAlive,
    pub(crate) connect_timeout: Duration,
    pub(crate) metrics: Arc<Metrics>,
    /// A TLS stream on which ALPN chose HTTP/1.1, left for the HTTP/1.1 pool so that its
    /// handshake is not wasted.
    pub(crate) spare: Arc<Mutex<Option<Transport>>>,
}

/// A connection ready for requests.
pub(crate) struct Established {
    /// Cloned for every request.
    pub(crate) send: SendRequest<Bytes>,
    /// Set once the connection has ended.
    pub(crate) closed: Arc<AtomicBool>,
}

impl Dialer {
    /// Opens a connection and starts the task that drives it; `ended` is told, by
    /// `notify_waiters`, when the connection ends.
    pub(crate) async fn connect(&self, ended: Arc<Notify>) -> Result<Established, Refusal> {
        let connected = timeout(self.connect_timeout, self.open(ended))
            .await
            .unwrap_or(Err(Refusal::Failed(ConnectFailure::TimedOut)));
        let result = match connected {
            Ok(_) => "ok",
            Err(Refusal::Http1 { .. }) => "http1",
            Err(Refusal::Failed(_)) => "error",
        };
        self.metrics.connect("2", result);
        match &connected {
            Ok(_) => tracing::debug!(
                tls = self.connector.is_tls(),
                proxied = self.connector.is_proxied(),
                "HTTP/2 connection open"
            ),
            Err(Refusal::Http1 { confirmed }) => {
                tracing::debug!(confirmed, "the upstream speaks HTTP/1.1");
            }
            Err(Refusal::Failed(error)) => tracing::debug!(%error, "no HTTP/2 connection"),
        }
        connected
    }

    async fn open(&self, ended: Arc<Notify>) -> Result<Established, Refusal> {
        let transport = self.connector.open().await.map_err(Refusal::Failed)?;
        match transport {
            Transport::Tls(stream) => {
                if transport_alpn_h2(&stream) {
                    return start(*stream, self.keep_alive, ended)
                        .await
                        .map_err(|_| Refusal::Failed(ConnectFailure::Handshake));
                }
                if self.versions == Versions::Http2Only {
                    return Err(Refusal::Failed(ConnectFailure::NoHttp2));
                }
                let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
                *spare = Some(Transport::Tls(stream));
                Err(Refusal::Http1 { confirmed: true })
            }
            Transport::Plain(tcp) => {
                let answered_http1 = Arc::new(AtomicBool::new(false));
                let sniff = Sniff {
                    io: tcp,
                    seen: [0; HTTP1.len()],
                    filled: 0,
                    answered_http1: Arc::clone(&answered_http1),
                };
                match start(sniff, self.keep_alive, ended).await {
                    Ok(established) => Ok(established),
                    Err(early) => {
                        let confirmed = answered_http1.load(Ordering::Acquire);
                        if (confirmed || early == EarlyEnd::Closed)
                            && self.versions == Versions::Negotiate
                        {
                            Err(Refusal::Http1 { confirmed })
                        } else {
                            Err(Refusal::Failed(ConnectFailure::Handshake))
                        }
                    }
                }
            }
        }
    }
}

fn transport_alpn_h2(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(crate::connect::tls::ALPN_H2)
}

/// How a connection ended before its first PING was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EarlyEnd {
    /// The peer closed or reset it, or sent what is not HTTP/2.
    Closed,
    /// Anything else (e.g. the peer's GOAWAY: it speaks HTTP/2 and refused).
    Other,
}

impl EarlyEnd {
    fn of(error: &h2::Error) -> Self {
        if error.is_io() || !error.is_remote() {
            Self::Closed
        } else {
            Self::Other
        }
    }
}

/// The HTTP/2 handshake on `io`, then the connection's own task; ready once the first PING
/// is answered.
async fn start<T>(io: T, keep_alive: KeepAlive, ended: Arc<Notify>) -> Result<Established, EarlyEnd>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, mut connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .handshake::<T, Bytes>(io)
        .await
        .map_err(|error| {
            tracing::debug!(%error, "HTTP/2 handshake failed");
            EarlyEnd::of(&error)
        })?;
    let pings = connection.ping_pong();
    let closed = Arc::new(AtomicBool::new(false));
    let (answered, first_pong) = oneshot::channel();
    let end = End {
        closed: Arc::clone(&closed),
        ended,
    };
    // The task ends with the connection: when the peer closes it or fails, when a PING goes
    // unanswered, or when the pool and every request on it are gone (h2 then says GOAWAY).
    tokio::spawn(drive(connection, pings, keep_alive, answered, end));
    // Until the server's SETTINGS are read, h2 would let any number of streams out; a server
    // that allows fewer would refuse the rest.
    match first_pong.await {
        Ok(Ok(())) => Ok(Established { send, closed }),
        Ok(Err(early)) => Err(early),
        Err(_) => Err(EarlyEnd::Other),
    }
}

/// What a connection's end is told to.
struct End {
    closed: Arc<AtomicBool>,
    /// The pool, so requests waiting for a stream look again.
    ended: Arc<Notify>,
}

/// Says whether the first PING was answered, or how the connection ended before.
type FirstAnswer = oneshot::Sender<Result<(), EarlyEnd>>;

/// Drives the connection (every frame in and out goes through here) until it ends.
async fn drive<T>(
    connection: h2::client::Connection<T, Bytes>,
    pings: Option<PingPong>,
    keep_alive: KeepAlive,
    answered: FirstAnswer,
    end: End,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = pin!(Coalesced {
        connection,
        yielded: false,
    });
    let mut answered = Some(answered);
    let ended = match pings {
        Some(pings) => {
            ping_while_driving(connection.as_mut(), pings, keep_alive, &mut answered).await
        }
        None => {
            // Never the case: the handle is taken only here.
            if let Some(answered) = answered.take() {
                let _ = answered.send(Ok(()));
            }
            connection.await.map_err(Ended::H2)
        }
    };
    if let Some(answered) = answered.take() {
        let early = match &ended {
            Ok(()) => EarlyEnd::Closed,
            Err(Ended::H2(error)) => EarlyEnd::of(error),
            Err(Ended::Silent) => EarlyEnd::Other,
        };
        let _ = answered.send(Err(early));
    }
    end.closed.store(true, Ordering::Release);
    end.ended.notify_waiters();
    match ended {
        Ok(()) => tracing::debug!("HTTP/2 connection closed"),
        Err(Ended::H2(error)) => tracing::debug!(%error, "HTTP/2 connection ended"),
        Err(Ended::Silent) => tracing::debug!("HTTP/2 connection ended: no answer to a PING"),
    }
}

/// Why a connection ended.
enum Ended {
    H2(h2::Error),
    /// A PING went unanswered.
    Silent,
}

impl From<h2::Error> for Ended {
    fn from(error: h2::Error) -> Self {
        Self::H2(error)
    }
}

/// Drives `connection` while sending a PING at once, then every `keep_alive.interval`; gives
/// up on a connection whose PING is unanswered for `keep_alive.timeout`. Says on `answered`
/// when the first is answered.
async fn ping_while_driving<F>(
    mut connection: Pin<&mut F>,
    mut pings: PingPong,
    keep_alive: KeepAlive,
    answered: &mut Option<FirstAnswer>,
) -> Result<(), Ended>
where
    F: Future<Output = Result<(), h2::Error>>,
{
    let mut next_ping = Instant::now();
    loop {
        tokio::select! {
            biased;
            ended = &mut connection => return Ok(ended?),
            () = sleep_until(next_ping) => {}
        }
        if pings.send_ping(Ping::opaque()).is_err() {
            // Only one PING may be out at a time; the connection is ending anyway.
            return Ok(connection.await?);
        }
        let pong = std::future::poll_fn(|cx| pings.poll_pong(cx));
        let mut pong = pin!(timeout(keep_alive.timeout, pong));
        tokio::select! {
            biased;
            ended = &mut connection => return Ok(ended?),
            pong = &mut pong => match pong {
                Ok(Ok(_)) => {
                    if let Some(answered) = answered.take() {
                        // Nobody waits any more if the connect was given up.
                        let _ = answered.send(Ok(()));
                    }
                    next_ping = Instant::now() + keep_alive.interval;
                }
                Ok(Err(error)) => return Err(Ended::H2(error)),
                Err(_) => return Err(Ended::Silent),
            },
        }
    }
}

/// The connection, polled only after the tasks that are ready when it is woken have run: the
/// streams they open and the answers that arrive meanwhile then go out and are read in one
/// pass, one write for many requests rather than one each. The wait is one turn of the
/// scheduler's queue.
struct Coalesced<F> {
    connection: F,
    yielded: bool,
}

impl<F> Future for Coalesced<F>
where
    F: Future + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.yielded {
            self.yielded = true;
            // Waking itself while running puts the task at the back of the queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Pin::new(&mut self.connection).poll(cx)
    }
}

/// What an HTTP/1.x server's answer starts with.
const HTTP1: &[u8] = b"HTTP/1.";

/// An h2c stream that notes whether the peer's first bytes are an HTTP/1.x status line: an
/// HTTP/1.1-only server answering the preface (typically with 400 or 505). Only the first
/// few bytes are looked at.
struct Sniff<T> {
    io: T,
    seen: [u8; HTTP1.len()],
    filled: usize,
    answered_http1: Arc<AtomicBool>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.filled < HTTP1.len() {
            let new = &buf.filled()[before..];
            let take = new.len().min(HTTP1.len() - this.filled);
            this.seen[this.filled..this.filled + take].copy_from_slice(&new[..take]);
            this.filled += take;
            if this.filled == HTTP1.len() && this.seen == *HTTP1 {
                this.answered_http1.store(true, Ordering::Release);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
