//! The task that keeps a component link connected: handshake, session, and reconnection with
//! backoff until shutdown.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use xmpp_parsers::jid::BareJid;

use crate::config::{ComponentConfig, LinkGate};
use crate::link::backoff::Backoff;
use crate::link::budget::RequestBudget;
use crate::link::component_link::ComponentLink;
use crate::link::error::SessionError;
use crate::link::handler::StanzaHandler;
use crate::link::handshake;
use crate::link::session::{self, SessionEnd};
use crate::link::state::LinkState;

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The component JID does not parse.
    #[error("invalid component JID {0:?}")]
    InvalidJid(String),
    /// A component JID is a bare domain (XEP-0114), without `@` or `/`.
    #[error("the component JID {0:?} must be a bare domain")]
    NotADomain(String),
    /// The instance id goes into every IQ id, so it must be short and plain.
    #[error("instance_id must be 1 to 32 ASCII letters or digits")]
    BadInstanceId,
    /// `outbound_queue`, `max_concurrent_iqs` or `max_request_bytes_in_flight` is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

fn validate(config: &ComponentConfig) -> Result<BareJid, ConfigError> {
    let jid = BareJid::new(&config.jid).map_err(|_| ConfigError::InvalidJid(config.jid.clone()))?;
    if jid.node().is_some() {
        return Err(ConfigError::NotADomain(config.jid.clone()));
    }
    let id = &config.instance_id;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::BadInstanceId);
    }
    if config.outbound_queue == 0 {
        return Err(ConfigError::Zero("outbound_queue"));
    }
    if config.max_concurrent_iqs == 0 {
        return Err(ConfigError::Zero("max_concurrent_iqs"));
    }
    if config.max_request_bytes_in_flight == 0 {
        return Err(ConfigError::Zero("max_request_bytes_in_flight"));
    }
    Ok(jid)
}

impl ComponentLink {
    /// Starts the link: connects, authenticates, and reconnects forever until `shutdown` is
    /// cancelled. The returned task ends after a clean close of the stream.
    pub fn spawn(
        config: ComponentConfig,
        handler: Arc<dyn StanzaHandler>,
        shutdown: CancellationToken,
    ) -> Result<(ComponentLink, JoinHandle<()>), ConfigError> {
        let jid = validate(&config)?;
        let link = ComponentLink::new(jid, &config);
        let task = tokio::spawn(supervise(link.clone(), config, handler, shutdown));
        Ok((link, task))
    }
}

/// Ready when `gate` closes (the lease is no longer held here); never without a gate.
async fn closed(gate: &mut Option<LinkGate>) {
    match gate {
        Some(gate) => {
            // A gate whose sender is gone stays as it last was.
            if gate.wait_for(Option::is_none).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn supervise(
    link: ComponentLink,
    config: ComponentConfig,
    handler: Arc<dyn StanzaHandler>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let tracker = Arc::clone(link.shared_tracker());
    let deadlines = tokio::spawn(async move { tracker.expire_overdue().await });
    let budget = RequestBudget::new(&config);
    let mut backoff = Backoff::new(config.reconnect);
    let component = link.jid().to_string();
    crate::metrics::link_started(&component);
    let mut gate = config.gate.clone();
    // When the last session ended: a gated link connects again only on a lease check started
    // after it (fencing). `None` until a session has ended.
    let mut ended: Option<tokio::time::Instant> = None;
    while !shutdown.is_cancelled() {
        if let Some(gate) = &mut gate {
            if gate.borrow_and_update().is_none() {
                link.set_state(LinkState::Standby);
                tracing::info!(%component, "component link: standby, another instance holds it");
                let opened = tokio::select! {
                    () = shutdown.cancelled() => break,
                    opened = gate.wait_for(Option::is_some) => opened.is_ok(),
                };
                if !opened {
                    // The lease's task is gone: nothing will ever open the gate again.
                    break;
                }
                tracing::info!(%component, "component link: this instance holds it now");
                backoff = Backoff::new(config.reconnect);
            } else if let Some(ended) = ended {
                let confirmed = tokio::select! {
                    () = shutdown.cancelled() => break,
                    confirmed = gate.wait_for(|held| held.is_none_or(|checked| checked > ended)) => confirmed.is_ok(),
                };
                if !confirmed {
                    break;
                }
                if gate.borrow().is_none() {
                    continue;
                }
            }
        }
        link.set_state(LinkState::Connecting);
        let opened = tokio::select! {
            () = shutdown.cancelled() => break,
            () = closed(&mut gate) => continue,
            opened = handshake::open(&config) => opened,
        };
        let reason = match opened {
            Ok(stream) => {
                let started = Instant::now();
                let context = session::Context {
                    link: &link,
                    config: &config,
                    handler: &handler,
                    tasks: &tasks,
                    budget: &budget,
                    shutdown: &shutdown,
                };
                // Fencing: a lease lost ends the session at once, the stream dropped unread.
                let end = tokio::select! {
                    end = session::run(stream, context) => end,
                    () = closed(&mut gate) => {
                        tracing::warn!(%component, "component link: lease lost, link dropped");
                        link.detach();
                        link.shared_tracker().fail_all();
                        ended = Some(tokio::time::Instant::now());
                        continue;
                    }
                };
                ended = Some(tokio::time::Instant::now());
                backoff.session_ended(started.elapsed());
                match end {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Failed(reason) => reason,
                }
            }
            Err(reason) => {
                ended = Some(tokio::time::Instant::now());
                reason
            }
        };
        let delay = backoff.next_delay();
        match &reason {
            SessionError::HandshakeRejected => tracing::error!(
                %component, retry_in = ?delay,
                "component link: the server rejected the handshake; check the component secret"
            ),
            other => tracing::warn!(
                %component, reason = %other, retry_in = ?delay, "component link down"
            ),
        }
        crate::metrics::component_reconnect(&component);
        link.set_state(LinkState::Down {
            reason: reason.to_string(),
        });
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => (),
        }
    }
    link.detach();
    link.shared_tracker().fail_all();
    deadlines.abort();
    tasks.close();
    if tokio::time::timeout(config.timeouts.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(%component, "component link: handlers still running after the grace period");
    }
    link.set_state(LinkState::Down {
        reason: "shut down".to_owned(),
    });
    tracing::info!(%component, "component link closed");
}
