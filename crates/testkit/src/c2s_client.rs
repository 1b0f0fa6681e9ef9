//! A small client-to-server XMPP client for tests, enough to play a phone's XMPP client:
//! plain TCP, SASL PLAIN, resource binding, IQs awaited by id, incoming stanzas with a timeout.
//!
//! One task owns the XML stream. It routes IQ results and errors to whoever waits for that id
//! and queues every other incoming element (messages, presences, IQ get/set, stream errors)
//! for [`C2sClient::recv`].

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::xmlstream::ReadError;

mod negotiation;
pub mod stanza;

use negotiation::{ClientStream, ensure_id, negotiate};

/// Where and as whom the client connects.
#[derive(Debug, Clone)]
pub struct C2sConfig {
    /// The server's client port on 127.0.0.1.
    pub port: u16,
    /// The server's domain (stream `to`, JID domain).
    pub domain: String,
    /// The account's localpart.
    pub user: String,
    /// The account's password.
    pub password: String,
    /// The resource to ask for.
    pub resource: String,
    /// Whether to send the legacy session IQ after binding (RFC 3921 §3).
    pub establish_session: bool,
    /// Bound on connecting/negotiating and the default wait in [`C2sClient::iq`] and
    /// [`C2sClient::recv`].
    pub timeout: Duration,
}

impl C2sConfig {
    /// `user@domain/test` on `127.0.0.1:port`, with a session and a 5 s timeout.
    pub fn new(port: u16, domain: &str, user: &str, password: &str) -> Self {
        Self {
            port,
            domain: domain.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            resource: "test".to_owned(),
            establish_session: true,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What went wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum C2sError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// Reading or writing the stream failed.
    #[error("stream I/O: {0}")]
    Io(#[source] io::Error),
    /// The server answered negotiation in an unexpected way.
    #[error("negotiation: {0}")]
    Negotiation(String),
    /// SASL failed with this condition (e.g. `not-authorized`).
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// Nothing arrived in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The stream is closed.
    #[error("stream closed")]
    Closed,
}

enum Command {
    Send(Element, oneshot::Sender<io::Result<()>>),
    Iq(Element, String, oneshot::Sender<Element>),
    Close(oneshot::Sender<()>),
}

/// A logged-in client session; the stream is dropped (without a footer) when this is dropped,
/// [`close`](Self::close) ends it cleanly.
#[derive(Debug)]
pub struct C2sClient {
    jid: String,
    timeout: Duration,
    commands: mpsc::Sender<Command>,
    incoming: mpsc::UnboundedReceiver<Element>,
    task: Option<JoinHandle<()>>,
    next_id: AtomicU64,
}

impl C2sClient {
    /// Connects, authenticates with SASL PLAIN, binds a resource and (if asked) establishes
    /// the session.
    pub async fn connect(config: C2sConfig) -> Result<Self, C2sError> {
        let (stream, jid) = tokio::time::timeout(config.timeout, negotiate(&config))
            .await
            .map_err(|_| C2sError::Timeout(config.timeout, "stream negotiation".to_owned()))??;
        let (commands, command_rx) = mpsc::channel(16);
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(stream, command_rx, incoming_tx));
        Ok(Self {
            jid,
            timeout: config.timeout,
            commands,
            incoming,
            task: Some(task),
            next_id: AtomicU64::new(1),
        })
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The bare JID (`user@domain`).
    pub fn bare_jid(&self) -> &str {
        self.jid.split('/').next().unwrap_or(&self.jid)
    }

    /// A fresh stanza id.
    pub fn next_id(&self) -> String {
        format!("c2s-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends one stanza (or any element) and waits until it is written.
    pub async fn send(&self, stanza: Element) -> Result<(), C2sError> {
        let (ack, written) = oneshot::channel();
        self.commands
            .send(Command::Send(stanza, ack))
            .await
            .map_err(|_| C2sError::Closed)?;
        written
            .await
            .map_err(|_| C2sError::Closed)?
            .map_err(C2sError::Io)
    }

    /// Sends available presence (RFC 6121 §4.2).
    pub async fn send_presence(&self) -> Result<(), C2sError> {
        self.send(stanza::available_presence()).await
    }

    /// Sends an IQ (an id is added if missing) and returns the answer, `type='result'` or
    /// `type='error'`, waiting at most the configured timeout.
    pub async fn iq(&self, iq: Element) -> Result<Element, C2sError> {
        self.iq_timeout(iq, self.timeout).await
    }

    /// Like [`iq`](Self::iq) with an explicit timeout.
    pub async fn iq_timeout(
        &self,
        mut iq: Element,
        timeout: Duration,
    ) -> Result<Element, C2sError> {
        let id = ensure_id(&mut iq, || self.next_id());
        let (waiter, answer) = oneshot::channel();
        self.commands
            .send(Command::Iq(iq, id.clone(), waiter))
            .await
            .map_err(|_| C2sError::Closed)?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(C2sError::Closed),
            Err(_) => Err(C2sError::Timeout(timeout, format!("the answer to IQ {id}"))),
        }
    }

    /// XEP-0199 ping; returns the answer.
    pub async fn ping(&self, to: &str) -> Result<Element, C2sError> {
        self.iq(stanza::ping(to)).await
    }

    /// XEP-0030 disco#info; returns the answer.
    pub async fn disco_info(&self, to: &str) -> Result<Element, C2sError> {
        self.iq(stanza::disco_info(to)).await
    }

    /// The next incoming element that is not an awaited IQ answer, waiting at most the
    /// configured timeout.
    pub async fn recv(&mut self) -> Result<Element, C2sError> {
        self.recv_timeout(self.timeout).await
    }

    /// Like [`recv`](Self::recv) with an explicit timeout.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Element, C2sError> {
        match tokio::time::timeout(timeout, self.incoming.recv()).await {
            Ok(Some(element)) => Ok(element),
            Ok(None) => Err(C2sError::Closed),
            Err(_) => Err(C2sError::Timeout(timeout, "an incoming stanza".to_owned())),
        }
    }

    /// The next incoming element for which `wanted` holds; others are dropped. Waits at most
    /// the configured timeout in total.
    pub async fn recv_where(
        &mut self,
        mut wanted: impl FnMut(&Element) -> bool,
    ) -> Result<Element, C2sError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let element = self.recv_timeout(left).await?;
            if wanted(&element) {
                return Ok(element);
            }
        }
    }

    /// Sends the stream footer and waits (bounded by the timeout) for the server's.
    pub async fn close(mut self) -> Result<(), C2sError> {
        let (done, closed) = oneshot::channel();
        self.commands
            .send(Command::Close(done))
            .await
            .map_err(|_| C2sError::Closed)?;
        tokio::time::timeout(self.timeout, closed)
            .await
            .map_err(|_| C2sError::Timeout(self.timeout, "the server's stream footer".to_owned()))?
            .map_err(|_| C2sError::Closed)?;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for C2sClient {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Owns the stream: writes commands, routes incoming elements. Ends on close, stream end or
/// a fatal read error; dropping the waiters then tells them the stream is closed.
async fn run(
    mut stream: ClientStream,
    mut commands: mpsc::Receiver<Command>,
    incoming: mpsc::UnboundedSender<Element>,
) {
    let mut waiting: HashMap<String, oneshot::Sender<Element>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Send(element, ack)) => {
                    let _ = ack.send(stream.send(&element).await);
                }
                Some(Command::Iq(element, id, waiter)) => {
                    // Register before sending: the answer may arrive before `send` returns.
                    waiting.insert(id.clone(), waiter);
                    if stream.send(&element).await.is_err() {
                        waiting.remove(&id);
                    }
                }
                Some(Command::Close(done)) => {
                    let _ = stream.shutdown().await;
                    // RFC 6120 §4.4: wait for the peer's closing tag before closing TCP.
                    while let Some(item) = stream.next().await {
                        if matches!(item, Err(ReadError::StreamFooterReceived | ReadError::HardError(_))) {
                            break;
                        }
                    }
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            item = stream.next() => match item {
                Some(Ok(element)) => {
                    let answer_id = (element.name() == "iq"
                        && matches!(element.attr("type"), Some("result" | "error")))
                        .then(|| element.attr("id").map(str::to_owned))
                        .flatten();
                    match answer_id.and_then(|id| waiting.remove(&id)) {
                        Some(waiter) => {
                            let _ = waiter.send(element);
                        }
                        None => {
                            let _ = incoming.send(element);
                        }
                    }
                }
                // Idle streams are fine in tests; parse errors of one element are not fatal.
                Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => {}
                Some(Err(ReadError::StreamFooterReceived | ReadError::HardError(_))) | None => {
                    return;
                }
            },
        }
    }
}
