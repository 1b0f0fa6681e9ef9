//! One connected session: the writer task, the reader loop, and how the session ends.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::xmlstream::ReadError;

use crate::config::ComponentConfig;
use crate::dispatch::Dispatcher;
use crate::error::SessionError;
use crate::handler::StanzaHandler;
use crate::handshake::{LinkStream, next_inbound};
use crate::link::ComponentLink;
use crate::state::LinkState;
use crate::transport::is_hard_limit_error;
use crate::writer::{WriterEnd, run_writer};

/// What a session borrows from the link's supervisor.
pub(crate) struct Context<'a> {
    pub link: &'a ComponentLink,
    pub config: &'a ComponentConfig,
    pub handler: &'a Arc<dyn StanzaHandler>,
    pub tasks: &'a TaskTracker,
    pub permits: &'a Arc<Semaphore>,
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
pub(crate) async fn run(mut stream: LinkStream, cx: Context<'_>) -> SessionEnd {
    let Some(socket) = stream.get_stream().take_writer() else {
        return SessionEnd::Failed(SessionError::Protocol("write half already taken"));
    };
    let (queue, outbound) = mpsc::channel(cx.config.outbound_queue);
    let stop_writer = CancellationToken::new();
    let mut writer = tokio::spawn(run_writer(outbound, socket, stop_writer.clone()));
    let component = cx.link.jid().to_string();
    cx.link.attach(queue);
    tracing::info!(%component, "component link up");
    metrics::counter!("pushgate_xmpp_link_up_total").increment(1);
    let dispatcher = Dispatcher::new(cx.link, cx.handler, cx.tasks, cx.permits, cx.config);
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
                () = drain(&mut stream, &dispatcher, cx.config) => (),
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
    stream: &mut LinkStream,
    dispatcher: &Dispatcher,
    config: &ComponentConfig,
    shutdown: &CancellationToken,
) -> ReadEnd {
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => return ReadEnd::Shutdown,
            next = next_inbound(stream, config.limits) => next,
        };
        match next {
            Some(Ok(inbound)) => {
                stream.get_stream().element_done();
                if let Some(reason) = dispatcher.dispatch(inbound, false).await {
                    return ReadEnd::Failed(reason);
                }
            }
            Some(Err(ReadError::SoftTimeout)) => dispatcher.keepalive(),
            Some(Err(ReadError::ParseError(error))) => {
                // The XML stream already skipped the element; nothing identifies it.
                stream.get_stream().element_done();
                tracing::warn!(%error, "dropping an element that failed to parse");
                metrics::counter!("pushgate_xmpp_stanzas_rejected_total", "reason" => "malformed")
                    .increment(1);
            }
            Some(Err(ReadError::HardError(e))) => {
                return ReadEnd::Failed(if e.kind() == std::io::ErrorKind::TimedOut {
                    SessionError::KeepaliveTimeout
                } else if is_hard_limit_error(&e) {
                    SessionError::HardLimit
                } else if is_connection_closed(&e) {
                    SessionError::ConnectionClosed
                } else {
                    SessionError::Io(e)
                });
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => return ReadEnd::ServerClosed,
        }
    }
}

/// Whether the socket ended in the middle of the stream (EOF before `</stream:stream>`).
fn is_connection_closed(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::UnexpectedEof
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rxml::Error>())
            .is_some_and(|inner| matches!(inner, rxml::Error::InvalidEof(_)))
}

/// Reads during shutdown until the stream ends: answers to our IQs still count, new requests
/// are turned away.
async fn drain(stream: &mut LinkStream, dispatcher: &Dispatcher, config: &ComponentConfig) {
    loop {
        match next_inbound(stream, config.limits).await {
            Some(Ok(inbound)) => {
                stream.get_stream().element_done();
                if dispatcher.dispatch(inbound, true).await.is_some() {
                    break;
                }
            }
            Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => {
                stream.get_stream().element_done();
            }
            Some(Err(ReadError::HardError(_) | ReadError::StreamFooterReceived)) | None => break,
        }
    }
    // Nothing more to read: keep waiting for the handlers (the caller's select bounds it).
    std::future::pending().await
}
