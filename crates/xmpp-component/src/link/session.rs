//! One connected session: the writer task, the reader loop, and how the session ends.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ComponentConfig;
use crate::link::budget::RequestBudget;
use crate::link::component_link::ComponentLink;
use crate::link::dispatch::Dispatcher;
use crate::link::error::SessionError;
use crate::link::handler::StanzaHandler;
use crate::link::handshake::LinkStream;
use crate::link::state::LinkState;
use crate::stream::fast_stanza::IqSetChild;
use crate::stream::reader::{ReadItem, StanzaReader};
use crate::stream::writer::{WriterEnd, run_writer};

/// What a session borrows from the link's supervisor.
pub(crate) struct Context<'a> {
    pub link: &'a ComponentLink,
    pub config: &'a ComponentConfig,
    pub handler: &'a Arc<dyn StanzaHandler>,
    pub tasks: &'a TaskTracker,
    pub budget: &'a RequestBudget,
    pub shutdown: &'a CancellationToken,
}

/// How a session ended.
pub(crate) enum SessionEnd {
    /// Shutdown was requested and the stream was closed cleanly.
    Shutdown,
    /// The session failed or the server closed it; reconnect.
    Failed(SessionError),
}

enum ReadEnd {
    Shutdown,
    ServerClosed,
    Failed(SessionError),
}

/// Runs a session from the handshake until it ends.
pub(crate) async fn run(stream: LinkStream, cx: Context<'_>) -> SessionEnd {
    let LinkStream {
        reader: mut stream,
        writer: socket,
    } = stream;
    let (queue, outbound) = mpsc::channel(cx.config.outbound_queue);
    let stop_writer = CancellationToken::new();
    let mut writer = tokio::spawn(run_writer(outbound, socket, stop_writer.clone()));
    let component = cx.link.jid().to_string();
    cx.link.attach(queue);
    tracing::info!(%component, "component link up");
    let dispatcher = Dispatcher::new(cx.link, cx.handler, cx.tasks, cx.budget, cx.config);
    {
        let (handler, link) = (Arc::clone(cx.handler), cx.link.clone());
        cx.tasks.spawn(async move { handler.link_up(&link).await });
    }

    let end = tokio::select! {
        end = read_loop(&mut stream, &dispatcher, cx.config, cx.shutdown) => end,
        // The writer only ends on its own when a write fails.
        written = &mut writer => ReadEnd::Failed(match written {
            Ok(WriterEnd::Failed(e)) => SessionError::Io(e),
            _ => SessionError::Protocol("the writer stopped"),
        }),
    };
    let graceful = match &end {
        ReadEnd::Shutdown => {
            // Take no new requests, let in-flight handlers answer (still reading, so that the
            // answers to their own IQs arrive), then close the stream.
            cx.link.set_state(LinkState::Down {
                reason: "shutting down".to_owned(),
            });
            cx.tasks.close();
            tokio::select! {
                () = cx.tasks.wait() => (),
                () = drain(&mut stream, &dispatcher) => (),
                () = tokio::time::sleep(cx.config.timeouts.shutdown_grace) => {
                    tracing::warn!(%component, "handlers still running after the grace period");
                }
            }
            true
        }
        ReadEnd::ServerClosed => true,
        ReadEnd::Failed(reason) => {
            cx.link.set_state(LinkState::Down {
                reason: reason.to_string(),
            });
            false
        }
    };
    cx.link.detach();
    if graceful && !writer.is_finished() {
        // The queue closes once the last in-flight send is done; the writer then drains it
        // and writes `</stream:stream>`.
        if tokio::time::timeout(cx.config.timeouts.shutdown_grace, &mut writer)
            .await
            .is_err()
        {
            stop_writer.cancel();
        }
    } else {
        stop_writer.cancel();
    }
    // Whatever the writer did, it is done or told to stop; it must not outlive the session.
    if !writer.is_finished() {
        let _ = writer.await;
    }
    let failed = cx.link.shared_tracker().fail_all();
    if failed > 0 {
        tracing::debug!(%component, failed, "pending IQs failed: link down");
    }
    match end {
        ReadEnd::Shutdown => SessionEnd::Shutdown,
        ReadEnd::ServerClosed => SessionEnd::Failed(SessionError::StreamClosed),
        ReadEnd::Failed(reason) => SessionEnd::Failed(reason),
    }
}

async fn read_loop(
    stream: &mut StanzaReader,
    dispatcher: &Dispatcher,
    config: &ComponentConfig,
    shutdown: &CancellationToken,
) -> ReadEnd {
    let mut take_set = |set: IqSetChild<'_, '_>| dispatcher.read_fast(set);
    let mut keepalive = Keepalive::default();
    let wake = sleep_until(keepalive.next_check(stream.last_input(), config));
    tokio::pin!(wake);
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => return ReadEnd::Shutdown,
            () = &mut wake => {
                // One timer for the whole session, moved on only when it fires.
                match keepalive.on_timer(stream.last_input(), config) {
                    Silence::Fine => (),
                    Silence::Ping => dispatcher.keepalive(),
                    Silence::Dead => return ReadEnd::Failed(SessionError::KeepaliveTimeout),
                }
                wake.as_mut().reset(keepalive.next_check(stream.last_input(), config));
                continue;
            }
            next = stream.next(&mut take_set) => next,
        };
        // A burst already in the read buffer is parsed without waiting on the socket, so the
        // runtime's budget would never make the reader yield: the handlers it spawns would not
        // run, each holding its request, until the whole burst is read. Counting every
        // stanza against the budget lets them run every 128 stanzas.
        tokio::task::consume_budget().await;
        match next {
            Ok(ReadItem::Inbound(inbound)) => {
                let wire_bytes = stream.last_element_bytes();
                if let Some(reason) = dispatcher.dispatch(inbound, wire_bytes, false).await {
                    return ReadEnd::Failed(reason);
                }
            }
            Ok(ReadItem::Taken(request)) => dispatcher.dispatch_fast(request, false).await,
            Ok(ReadItem::Dropped) => {
                tracing::warn!("dropping an element that failed to parse");
                crate::metrics::stanza_refused("malformed");
            }
            Ok(ReadItem::StreamEnd) => return ReadEnd::ServerClosed,
            Err(failure) => return ReadEnd::Failed(SessionError::from(failure)),
        }
    }
}

/// What read silence calls for.
enum Silence {
    Fine,
    Ping,
    Dead,
}

/// Read silence: after `keepalive_idle` without input the link pings, and after
/// `keepalive_timeout` more it is declared dead.
#[derive(Default)]
struct Keepalive {
    /// When the pings went out, while no input has come since.
    pinged_at: Option<Instant>,
}

impl Keepalive {
    /// Called when the timer fires.
    fn on_timer(&mut self, last_input: Instant, config: &ComponentConfig) -> Silence {
        let now = Instant::now();
        if let Some(pinged_at) = self.pinged_at {
            if last_input >= pinged_at {
                // Input came after the pings: the link is alive.
                self.pinged_at = None;
            } else if now >= pinged_at + config.timeouts.keepalive_timeout {
                return Silence::Dead;
            } else {
                return Silence::Fine;
            }
        }
        if now >= last_input + config.timeouts.keepalive_idle {
            self.pinged_at = Some(now);
            return Silence::Ping;
        }
        Silence::Fine
    }

    fn next_check(&self, last_input: Instant, config: &ComponentConfig) -> Instant {
        match self.pinged_at {
            Some(pinged_at) => pinged_at + config.timeouts.keepalive_timeout,
            None => last_input + config.timeouts.keepalive_idle,
        }
    }
}

/// Reads during shutdown until the stream ends: answers to our IQs still count, new requests
/// are turned away.
async fn drain(stream: &mut StanzaReader, dispatcher: &Dispatcher) {
    let mut take_set = |set: IqSetChild<'_, '_>| dispatcher.read_fast(set);
    loop {
        match stream.next(&mut take_set).await {
            Ok(ReadItem::Inbound(inbound)) => {
                if dispatcher.dispatch(inbound, 0, true).await.is_some() {
                    break;
                }
            }
            Ok(ReadItem::Taken(request)) => dispatcher.dispatch_fast(request, true).await,
            Ok(ReadItem::Dropped) => (),
            Ok(ReadItem::StreamEnd) | Err(_) => break,
        }
    }
    // Nothing more to read: keep waiting for the handlers (the caller's select bounds it).
    std::future::pending().await
}
