//! The UnifiedPush provider role (up): clients register for endpoints, and messages kept while
//! a client was away are flushed when it comes back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushgate_core::provider::Provider;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use xmpp_parsers::disco::{DiscoInfoResult, Item as DiscoItem};
use xmpp_parsers::iq::{IqHeader, IqRequestPayload};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::{self, Presence};

use super::commands::COMMANDS;
use super::{Role, UNIFIED_PUSH, push_status, up_register};
use crate::link::component_link::ComponentLink;
use crate::link::handler::IqReply;

/// The first wait before a flush the database failed is tried again; it doubles each time.
const FLUSH_RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries of a failed flush.
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(10);

/// The provider on one link. Store-and-forward flushes (on available presence and on each
/// link-up) run on tasks of their own, so the reader never waits for a client.
pub(crate) struct UnifiedPushRole {
    /// The link's JID, named in the command list of disco#items.
    component: BareJid,
    provider: Arc<Provider>,
    tasks: TaskTracker,
    /// Cancelled on shutdown: flushes waiting to try again stop.
    closing: CancellationToken,
}

impl UnifiedPushRole {
    pub(crate) fn new(component: BareJid, provider: Arc<Provider>) -> Self {
        // Served from the start at 0 (docs/metrics.md), not only after the first retry.
        metrics::counter!("pushgate_up_flush_retries_total").increment(0);
        Self {
            component,
            provider,
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
        }
    }

    /// Flushes `owner`'s kept messages, or everyone's; a flush the database failed is tried
    /// again with a growing delay until it succeeds or pushgate shuts down, so accepted
    /// messages never wait for the next presence or link-up.
    fn spawn_flush(&self, owner: Option<Jid>) {
        let provider = Arc::clone(&self.provider);
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let mut retry_in = FLUSH_RETRY_FIRST;
            loop {
                let report = match &owner {
                    Some(owner) => provider.flush_owner(owner.as_str()).await,
                    None => provider.flush_all().await,
                };
                if report.delivered + report.revoked + report.unopenable > 0 || report.interrupted {
                    tracing::debug!(?report, "stored UnifiedPush messages flushed");
                }
                if !report.failed {
                    return;
                }
                metrics::counter!("pushgate_up_flush_retries_total").increment(1);
                tokio::select! {
                    () = closing.cancelled() => return,
                    () = tokio::time::sleep(retry_in) => (),
                }
                retry_in = (retry_in * 2).min(FLUSH_RETRY_MAX);
            }
        });
    }
}

#[async_trait]
impl Role for UnifiedPushRole {
    fn features(&self) -> Vec<String> {
        vec![UNIFIED_PUSH.to_owned(), COMMANDS.to_owned()]
    }

    fn node_info(&self, node: &str) -> Option<DiscoInfoResult> {
        push_status::node_info(node)
    }

    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        match node {
            Some(COMMANDS) => vec![push_status::item(&self.component)],
            _ => Vec::new(),
        }
    }

    fn takes(&self, payload: &Element) -> bool {
        payload.is("register", UNIFIED_PUSH) || push_status::is_push_status(payload)
    }

    async fn handle_iq(
        &self,
        _link: &ComponentLink,
        request: &IqHeader,
        payload: IqRequestPayload,
    ) -> IqReply {
        let (is_set, payload) = match payload {
            IqRequestPayload::Get(payload) => (false, payload),
            IqRequestPayload::Set(payload) => (true, payload),
        };
        if push_status::is_push_status(&payload) {
            return push_status::execute(&self.provider, request, is_set, &payload).await;
        }
        up_register::handle(&self.provider, request, is_set, &payload)
    }

    async fn handle_presence(&self, _link: &ComponentLink, presence: &Presence) {
        // RFC 6121 §4.2: available presence has no type. Unavailable presence, probes and
        // subscription requests change nothing here.
        if presence.type_ != presence::Type::None {
            return;
        }
        // Messages are kept per full JID (the owner in the endpoint token). Presence is sent
        // on every bind by every client of the server, so only an owner with kept messages
        // starts a flush.
        if let Some(owner) = presence.from.as_ref().filter(|from| from.is_full())
            && self.provider.may_have_messages(owner.as_str())
        {
            self.spawn_flush(Some(owner.clone()));
        }
    }

    async fn link_up(&self, _link: &ComponentLink) {
        self.spawn_flush(None);
    }

    fn running_tasks(&self) -> usize {
        self.tasks.len()
    }

    async fn close_and_wait(&self) {
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
