//! A fake XMPP server for component tests: the server side of XEP-0114 on 127.0.0.1:0.
//!
//! It accepts a component stream, checks the handshake (a wrong secret gets
//! `<stream:error><not-authorized/>`, as Prosody and ejabberd do), and then hands the test a
//! [`FakeSession`]: send raw bytes or stanzas to the component, receive what it sends as parsed
//! elements, drop the connection. Reading and writing run on their own tasks with batched
//! writes, so thousands of stanzas per second pass through it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rxml::{AsyncReader, AttrMap, Event, Namespace, QName};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use xmpp_parsers::component::Handshake;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xso::{FromEventsBuilder, FromXml};

const NOT_AUTHORIZED: &[u8] = b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";

struct Shared {
    jid: String,
    secret: String,
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    rejected: AtomicUsize,
    refuse_next: AtomicUsize,
    answer_pings: AtomicBool,
    stream_ids: AtomicU64,
}

/// The fake server: a listener plus counters and switches.
pub struct FakeXmppServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    sessions: Mutex<mpsc::UnboundedReceiver<FakeSession>>,
    accept_task: JoinHandle<()>,
}

impl Drop for FakeXmppServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl FakeXmppServer {
    /// Binds 127.0.0.1:0 and serves the component `jid` with `secret`.
    pub async fn start(jid: &str, secret: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            jid: jid.to_owned(),
            secret: secret.to_owned(),
            connections: AtomicUsize::new(0),
            handshakes: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            refuse_next: AtomicUsize::new(0),
            answer_pings: AtomicBool::new(false),
            stream_ids: AtomicU64::new(0),
        });
        let (sessions_tx, sessions) = mpsc::unbounded_channel();
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), sessions_tx));
        Ok(Self {
            addr,
            shared,
            sessions: Mutex::new(sessions),
            accept_task,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted so far (refused ones included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Successful handshakes so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes rejected with `not-authorized` so far.
    pub fn rejected_handshakes(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Closes the next `n` connections right after accepting them.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse_next.store(n, Ordering::SeqCst);
    }

    /// When on, XEP-0199 pings from the component are answered (from the pinged address) and
    /// not passed to the test, like a live server would.
    pub fn answer_pings(&self, on: bool) {
        self.shared.answer_pings.store(on, Ordering::SeqCst);
    }

    /// The next authenticated session, or `None` after `timeout`.
    pub async fn next_session(&self, timeout: Duration) -> Option<FakeSession> {
        let mut sessions = self.sessions.lock().await;
        tokio::time::timeout(timeout, sessions.recv())
            .await
            .ok()
            .flatten()
    }
}

/// What the component sent, in order.
#[derive(Debug)]
pub enum FromComponent {
    /// A top-level element (a stanza).
    Stanza(Element),
    /// `</stream:stream>`.
    StreamEnd,
    /// The TCP connection closed (or a read failed).
    Closed,
}

enum ToComponent {
    Bytes(Bytes),
    Close,
}

/// One authenticated component connection.
pub struct FakeSession {
    stream_id: String,
    stream_to: Option<String>,
    outgoing: mpsc::UnboundedSender<ToComponent>,
    events: mpsc::UnboundedReceiver<FromComponent>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for FakeSession {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl FakeSession {
    /// The stream id the server announced.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The `to` of the component's stream header.
    pub fn stream_to(&self) -> Option<&str> {
        self.stream_to.as_deref()
    }

    /// Writes raw bytes to the component.
    pub fn send_raw(&self, bytes: impl Into<Bytes>) {
        let _ = self.outgoing.send(ToComponent::Bytes(bytes.into()));
    }

    /// Writes a stanza (serialised with its namespace, which must be `jabber:component:accept`).
    pub fn send(&self, stanza: impl Into<Element>) {
        let element: Element = stanza.into();
        self.send_raw(Bytes::from(String::from(&element)));
    }

    /// Sends `</stream:stream>` and closes the server's side.
    pub fn close_stream(&self) {
        let _ = self.outgoing.send(ToComponent::Close);
    }

    /// Closes the TCP connection at once, without a stream footer.
    pub fn drop_connection(self) {
        drop(self);
    }

    /// The next thing the component did, or `None` after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<FromComponent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next stanza, or `None` on timeout or when the stream ended.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Element> {
        match self.next_event(timeout).await {
            Some(FromComponent::Stanza(element)) => Some(element),
            _ => None,
        }
    }

    /// The next stanza as an IQ; `None` on timeout, stream end, or a non-IQ stanza.
    pub async fn recv_iq(&mut self, timeout: Duration) -> Option<Iq> {
        self.recv(timeout)
            .await
            .and_then(|element| Iq::try_from(element).ok())
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    sessions: mpsc::UnboundedSender<FakeSession>,
) {
    while let Ok((socket, _)) = listener.accept().await {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let refuse = shared
            .refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            drop(socket);
            continue;
        }
        let (shared, sessions) = (Arc::clone(&shared), sessions.clone());
        tokio::spawn(async move {
            if let Ok(Some(session)) = serve(socket, shared).await {
                let _ = sessions.send(session);
            }
        });
    }
}

type Reader = AsyncReader<BufReader<OwnedReadHalf>>;

/// Runs the XEP-0114 opening; `Some` once the component is authenticated.
async fn serve(socket: TcpStream, shared: Arc<Shared>) -> io::Result<Option<FakeSession>> {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut reader = AsyncReader::new(BufReader::with_capacity(64 * 1024, read));
    let (name, attrs) = loop {
        match reader.read().await? {
            Some(Event::StartElement(_, name, attrs)) => break (name, attrs),
            Some(Event::XmlDeclaration(..) | Event::Text(..)) => continue,
            _ => return Ok(None),
        }
    };
    if name.0 != ns::STREAM || name.1 != "stream" {
        return Ok(None);
    }
    let stream_to = attrs.get(&Namespace::NONE, "to").cloned();
    let stream_id = format!(
        "fake{}",
        shared.stream_ids.fetch_add(1, Ordering::SeqCst) + 1
    );
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns:stream='{}' xmlns='{}' id='{stream_id}' from='{}'>",
        ns::STREAM,
        ns::COMPONENT,
        shared.jid
    );
    write.write_all(header.as_bytes()).await?;
    let Top::Element(handshake) = read_top(&mut reader).await? else {
        return Ok(None);
    };
    let expected = Handshake::from_stream_id_and_password(stream_id.clone(), &shared.secret);
    if Handshake::try_from(handshake).ok() != Some(expected) {
        shared.rejected.fetch_add(1, Ordering::SeqCst);
        write.write_all(NOT_AUTHORIZED).await?;
        write.shutdown().await?;
        return Ok(None);
    }
    write.write_all(b"<handshake/>").await?;
    shared.handshakes.fetch_add(1, Ordering::SeqCst);

    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(write, outgoing_rx));
    let reader = tokio::spawn(read_loop(reader, events_tx, outgoing.clone(), shared));
    Ok(Some(FakeSession {
        stream_id,
        stream_to,
        outgoing,
        events,
        reader,
        writer,
    }))
}

enum Top {
    Element(Element),
    StreamEnd,
    Eof,
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn read_top(reader: &mut Reader) -> io::Result<Top> {
    let ctx = xso::Context::empty();
    let (name, attrs): (QName, AttrMap) = loop {
        match reader.read().await? {
            None => return Ok(Top::Eof),
            Some(Event::StartElement(_, name, attrs)) => break (name, attrs),
            Some(Event::EndElement(_)) => return Ok(Top::StreamEnd),
            Some(Event::Text(..) | Event::XmlDeclaration(..)) => continue,
        }
    };
    let mut builder = Element::from_events(name, attrs, &ctx)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad element start"))?;
    loop {
        let Some(event) = reader.read().await? else {
            return Ok(Top::Eof);
        };
        if let Some(element) = builder.feed(event, &ctx).map_err(invalid)? {
            return Ok(Top::Element(element));
        }
    }
}

async fn read_loop(
    mut reader: Reader,
    events: mpsc::UnboundedSender<FromComponent>,
    outgoing: mpsc::UnboundedSender<ToComponent>,
    shared: Arc<Shared>,
) {
    loop {
        let event = match read_top(&mut reader).await {
            Ok(Top::Element(element)) => {
                if shared.answer_pings.load(Ordering::Relaxed)
                    && let Some(answer) = ping_answer(&element)
                {
                    let _ = outgoing.send(ToComponent::Bytes(Bytes::from(answer)));
                    continue;
                }
                FromComponent::Stanza(element)
            }
            Ok(Top::StreamEnd) => FromComponent::StreamEnd,
            Ok(Top::Eof) | Err(_) => {
                let _ = events.send(FromComponent::Closed);
                return;
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// The result a server would send for a XEP-0199 ping.
fn ping_answer(element: &Element) -> Option<String> {
    if !element.is("iq", ns::COMPONENT) || element.attr("type") != Some("get") {
        return None;
    }
    element.get_child("ping", ns::PING)?;
    let mut answer = format!(
        "<iq type='result' id='{}'",
        escape(element.attr("id").unwrap_or_default())
    );
    if let Some(to) = element.attr("to") {
        answer.push_str(&format!(" from='{}'", escape(to)));
    }
    if let Some(from) = element.attr("from") {
        answer.push_str(&format!(" to='{}'", escape(from)));
    }
    answer.push_str("/>");
    Some(answer)
}

/// Escapes text for a single-quoted XML attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

async fn write_loop(
    mut socket: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<ToComponent>,
) {
    let mut batch = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = outgoing.recv().await {
        let mut close = false;
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                ToComponent::Bytes(bytes) => batch.extend_from_slice(&bytes),
                ToComponent::Close => {
                    batch.extend_from_slice(b"</stream:stream>");
                    close = true;
                    break;
                }
            }
            next = if batch.len() < 256 * 1024 {
                outgoing.try_recv().ok()
            } else {
                None
            };
        }
        if socket.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
        if close {
            let _ = socket.shutdown().await;
            return;
        }
    }
}
