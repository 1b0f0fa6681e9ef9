//! Opening one HTTP/2 connection to FCM: TCP (both address families, the second after a short
//! head start of the first, RFC 8305 in brief), TLS with ALPN `h2` for `https://`, HTTP/2 with
//! prior knowledge (RFC 9113 §3.3) for `http://`; then the task that drives the connection and
//! keeps it alive with PINGs. A connection is handed out once its first PING is answered: the
//! server's SETTINGS come before that answer (RFC 9113 §3.4), so h2 then knows how many
//! streams the server allows at once.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::{Host, Url};

use crate::tls::ALPN_H2;

/// How each connection to FCM is kept alive: a PING every `interval`, idle or not, so
/// that NATs and load balancers keep it and a dead peer is noticed before a wake-up needs it;
/// a PING unanswered for `timeout` ends the connection (the next send opens a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// Time from one answered PING to the next PING.
    pub interval: Duration,
    /// How long a PING may go unanswered.
    pub timeout: Duration,
}

impl Default for KeepAlive {
    /// A PING every 30 s, dead after 20 s without an answer.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(20),
        }
    }
}
/// The head start of the preferred address family before the other is tried too.
const FALLBACK_DELAY: Duration = Duration::from_millis(300);
/// The connection-level receive window: room for a thousand small answers at once, so a burst
/// of answers is never held back waiting for the readers.
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The most header bytes accepted in one answer.
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Why no connection could be opened. Never holds a token or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// The host name has no address.
    Resolve,
    /// Every address refused or failed.
    Tcp,
    /// TLS failed (e.g. an untrusted certificate).
    Tls,
    /// The server did not choose `h2` by ALPN.
    NoHttp2,
    /// The HTTP/2 preface could not be sent, or the connection ended before its first PING
    /// was answered.
    Handshake,
    /// No connection in the time allowed.
    TimedOut,
}

impl ConnectError {
    /// A short description for logs and outcomes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Resolve => "cannot connect: the host name does not resolve",
            Self::Tcp => "cannot connect",
            Self::Tls => "cannot connect: the TLS handshake failed",
            Self::NoHttp2 => "cannot connect: the server does not offer HTTP/2 by ALPN",
            Self::Handshake => "cannot connect: the HTTP/2 handshake failed",
            Self::TimedOut => "cannot connect: timed out",
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how to connect, prepared once.
pub(crate) struct Endpoint {
    host: Host<String>,
    port: u16,
    /// `None` for `http://`.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    keep_alive: KeepAlive,
}

/// A connection ready for requests.
pub(crate) struct Established {
    /// Cloned for every request.
    pub(crate) send: SendRequest<Bytes>,
    /// Set once the connection has ended.
    pub(crate) closed: Arc<AtomicBool>,
}

impl Endpoint {
    /// The endpoint of `url`; `tls` is used for `https://` URLs.
    pub(crate) fn new(
        url: &Url,
        tls: Option<TlsConnector>,
        connect_timeout: Duration,
    ) -> Option<Self> {
        let host = url.host()?.to_owned();
        let port = url.port_or_known_default()?;
        let tls = match (url.scheme(), tls) {
            ("http", _) => None,
            ("https", Some(connector)) => {
                let name = match &host {
                    Host::Domain(domain) => ServerName::try_from(domain.clone()).ok()?,
                    Host::Ipv4(ip) => ServerName::from(IpAddr::V4(*ip)),
                    Host::Ipv6(ip) => ServerName::from(IpAddr::V6(*ip)),
                };
                Some((connector, name))
            }
            _ => return None,
        };
        Some(Self {
            host,
            port,
            tls,
            connect_timeout,
            keep_alive: KeepAlive::default(),
        })
    }

    /// Replaces the keep-alive of the connections opened from now on.
    pub(crate) fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        self.keep_alive = keep_alive;
    }

    /// Whether requests go out over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection and starts the task that drives it; `ended` is told, by
    /// `notify_waiters`, when the connection ends.
    pub(crate) async fn connect(&self, ended: Arc<Notify>) -> Result<Established, ConnectError> {
        let connected = timeout(self.connect_timeout, async {
            let tcp = self.dial().await?;
            // Requests are small and latency matters more than packet count.
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => start(tcp, self.keep_alive, ended).await,
                Some((connector, name)) => {
                    let stream = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|error| {
                            tracing::debug!(%error, "TLS handshake with FCM failed");
                            ConnectError::Tls
                        })?;
                    if stream.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                        return Err(ConnectError::NoHttp2);
                    }
                    start(stream, self.keep_alive, ended).await
                }
            }
        })
        .await;
        let result = connected.unwrap_or(Err(ConnectError::TimedOut));
        metrics::counter!(
            "pushgate_fcm_connects_total",
            "result" => if result.is_ok() { "ok" } else { "error" }
        )
        .increment(1);
        match &result {
            Ok(_) => tracing::debug!(tls = self.is_tls(), "HTTP/2 connection to FCM open"),
            Err(error) => tracing::debug!(%error, "no connection to FCM"),
        }
        result
    }

    async fn dial(&self) -> Result<TcpStream, ConnectError> {
        let addresses: Vec<SocketAddr> = match &self.host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), self.port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), self.port)],
            Host::Domain(domain) => tokio::net::lookup_host((domain.as_str(), self.port))
                .await
                .map_err(|_| ConnectError::Resolve)?
                .collect(),
        };
        let first = addresses.first().ok_or(ConnectError::Resolve)?;
        let (preferred, other): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
            .iter()
            .partition(|address| address.is_ipv6() == first.is_ipv6());
        if other.is_empty() {
            return dial_each(&preferred, self.connect_timeout).await;
        }
        let mut preferred_done = false;
        let mut other_done = false;
        let mut preferred = pin!(dial_each(&preferred, self.connect_timeout));
        let mut other = pin!(async {
            sleep(FALLBACK_DELAY).await;
            dial_each(&other, self.connect_timeout).await
        });
        // The first family to connect wins; a failure waits for the other family.
        loop {
            tokio::select! {
                result = &mut preferred, if !preferred_done => match result {
                    Ok(stream) => return Ok(stream),
                    Err(error) if other_done => return Err(error),
                    Err(_) => preferred_done = true,
                },
                result = &mut other, if !other_done => match result {
                    Ok(stream) => return Ok(stream),
                    Err(error) if preferred_done => return Err(error),
                    Err(_) => other_done = true,
                },
            }
        }
    }
}

/// Tries `addresses` in order, each with an equal share of `budget`, so one that swallows
/// packets cannot use up all the time.
async fn dial_each(addresses: &[SocketAddr], budget: Duration) -> Result<TcpStream, ConnectError> {
    let count = u32::try_from(addresses.len()).unwrap_or(u32::MAX).max(1);
    let share = budget / count;
    for address in addresses {
        match timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) => tracing::debug!(%address, %error, "cannot connect to FCM"),
            Err(_) => tracing::debug!(%address, "connecting to FCM timed out"),
        }
    }
    Err(ConnectError::Tcp)
}

/// The HTTP/2 handshake on `io`, then the connection's own task; ready once the first PING
/// is answered.
async fn start<T>(
    io: T,
    keep_alive: KeepAlive,
    ended: Arc<Notify>,
) -> Result<Established, ConnectError>
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
            tracing::debug!(%error, "HTTP/2 handshake with FCM failed");
            ConnectError::Handshake
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
    first_pong.await.map_err(|_| ConnectError::Handshake)?;
    Ok(Established { send, closed })
}

/// What a connection's end is told to.
struct End {
    closed: Arc<AtomicBool>,
    /// The pool, so sends waiting for a stream look again.
    ended: Arc<Notify>,
}

/// Drives the connection (every frame in and out goes through here) until it ends; says on
/// `answered` when the first PING is answered.
async fn drive<T>(
    connection: h2::client::Connection<T, Bytes>,
    pings: Option<PingPong>,
    keep_alive: KeepAlive,
    answered: oneshot::Sender<()>,
    end: End,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = pin!(Coalesced {
        connection,
        yielded: false,
    });
    let ended = match pings {
        Some(pings) => ping_while_driving(connection.as_mut(), pings, keep_alive, answered).await,
        None => {
            // Never the case: the handle is taken only here.
            let _ = answered.send(());
            connection.await.map_err(|error| error.to_string())
        }
    };
    end.closed.store(true, Ordering::Release);
    end.ended.notify_waiters();
    match ended {
        Ok(()) => tracing::debug!("HTTP/2 connection to FCM closed"),
        Err(reason) => tracing::debug!(%reason, "HTTP/2 connection to FCM ended"),
    }
}

/// Drives `connection` while sending a PING at once, then every `keep_alive.interval`; gives
/// up on a connection whose PING is unanswered for `keep_alive.timeout`. Says on `answered`
/// when the first is answered.
async fn ping_while_driving<F>(
    mut connection: Pin<&mut F>,
    mut pings: PingPong,
    keep_alive: KeepAlive,
    answered: oneshot::Sender<()>,
) -> Result<(), String>
where
    F: Future<Output = Result<(), h2::Error>>,
{
    let mut first_answer = Some(answered);
    let mut next_ping = Instant::now();
    loop {
        tokio::select! {
            biased;
            ended = &mut connection => return ended.map_err(|error| error.to_string()),
            () = sleep_until(next_ping) => {}
        }
        if pings.send_ping(Ping::opaque()).is_err() {
            // Only one PING may be out at a time; the connection is ending anyway.
            return connection.await.map_err(|error| error.to_string());
        }
        let pong = std::future::poll_fn(|cx| pings.poll_pong(cx));
        let mut pong = pin!(timeout(keep_alive.timeout, pong));
        tokio::select! {
            biased;
            ended = &mut connection => return ended.map_err(|error| error.to_string()),
            answered = &mut pong => match answered {
                Ok(Ok(_)) => {
                    if let Some(first_answer) = first_answer.take() {
                        // Nobody waits any more if the connect was given up.
                        let _ = first_answer.send(());
                    }
                    next_ping = Instant::now() + keep_alive.interval;
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer to a PING".to_owned()),
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
