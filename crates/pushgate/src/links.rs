//! The component links: started from their `[component]` settings (`pushgate-xmpp`'s
//! `ComponentSettings`), each with its stanza handler (the push roles it serves), and how
//! `/health` sees them.

use std::sync::Arc;

use pushgate_store::PeerBus;
use pushgate_xmpp::xmpp_parsers::iq::Iq;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use pushgate_xmpp::{
    ComponentLink, ConfigError, ForeignAnswers, LinkMode, LinkState, PushRoles, StanzaHandler,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::LinkHealth;
use crate::services::Services;
use crate::settings::{ComponentSettings, RoleName};

/// A running link with its stanza handler, which owns the link's background flushes.
pub struct RunningLink {
    /// The link.
    pub link: ComponentLink,
    /// Its mode, as `/health` names it.
    pub mode: LinkMode,
    /// Its task; ends after the link closed its stream on shutdown.
    pub task: JoinHandle<()>,
    /// Its handler; [`PushRoles::close_and_wait`] awaits its flushes.
    pub roles: Arc<PushRoles>,
}

/// Starts one link per `[component]` under `shutdown`, each serving the roles its settings
/// name. The link with the `unified_push` role carries the provider's pushes. If one link
/// refuses its settings, the ones already started are stopped (through `shutdown`) and awaited
/// before the error is returned.
///
/// With a PostgreSQL database (`lease_database`), a link in `single` mode is held only while
/// this instance holds its lease (`pushgate_store::hold_link_lease`).
pub async fn spawn_links(
    components: &[ComponentSettings],
    services: &Services,
    shutdown: &CancellationToken,
    lease_database: Option<&str>,
) -> Result<Vec<RunningLink>, ConfigError> {
    let mut started: Vec<RunningLink> = Vec::with_capacity(components.len());
    for settings in components {
        let spawned = spawn_link(settings, services, shutdown, lease_database);
        match spawned {
            Ok(running) => started.push(running),
            Err(error) => {
                shutdown.cancel();
                for running in started {
                    // A link task that panicked has nothing left to stop.
                    let _ = running.task.await;
                    running.roles.close_and_wait().await;
                }
                return Err(error);
            }
        }
    }
    Ok(started)
}

fn spawn_link(
    settings: &ComponentSettings,
    services: &Services,
    shutdown: &CancellationToken,
    lease_database: Option<&str>,
) -> Result<RunningLink, ConfigError> {
    let jid = settings
        .domain_jid()
        .map_err(|error| ConfigError::InvalidJid(error.to_string()))?;
    let app_server = settings
        .roles
        .contains(&RoleName::AppServer)
        .then(|| services.app_servers.get(&settings.app).cloned())
        .flatten();
    let push_modules = settings
        .roles
        .contains(&RoleName::PushModules)
        .then(|| services.push_modules.clone())
        .flatten();
    let unified_push = settings.roles.contains(&RoleName::UnifiedPush);
    let provider = unified_push.then(|| services.provider.clone()).flatten();
    let roles = Arc::new(PushRoles::serving(jid, app_server, push_modules, provider));
    let mut config = settings.component_config();
    config.instance_id = services.instance_id.clone();
    let peers = services.peers.as_ref().filter(|_| unified_push);
    if let Some(peers) = peers {
        config.foreign_answers = Some(Arc::new(AnswerRelay(peers.clone())));
    }
    if let (Some(url), LinkMode::Single) = (lease_database, settings.mode) {
        let (gate, gated) = tokio::sync::watch::channel(None);
        config.gate = Some(gated);
        let (holder, holder_known) = tokio::sync::watch::channel(None);
        if let Some(peers) = peers {
            peers.follow_holder(holder_known);
        }
        let lease = tokio::spawn(pushgate_store::hold_link_lease(
            url.to_owned(),
            settings.jid.clone(),
            services.instance_id.clone(),
            gate,
            holder,
        ));
        let shutdown = shutdown.clone();
        // The lease ends with the process's shutdown; its lock goes with its connection.
        tokio::spawn(async move {
            shutdown.cancelled().await;
            lease.abort();
        });
    }
    let (link, task) = ComponentLink::spawn(
        config,
        Arc::clone(&roles) as Arc<dyn StanzaHandler>,
        shutdown.clone(),
    )?;
    if unified_push && let Some(client_link) = &services.client_link {
        // Settings allow one unified_push link, so the slot is still free.
        if client_link.attach(link.clone()).is_err() {
            tracing::warn!(jid = %link.jid(), "a second unified_push link is ignored");
        }
    }
    if let Some(peers) = peers {
        let link = link.clone();
        peers.take_answers(Arc::new(move |xml: &str| {
            xml.parse::<Element>()
                .ok()
                .and_then(|element| Iq::try_from(element).ok())
                .is_some_and(|answer| link.resolve_forwarded(answer))
        }));
    }
    Ok(RunningLink {
        link,
        mode: settings.mode,
        task,
        roles,
    })
}

/// Hands the answers to other instances' IQs (their ids name them) to those instances: with
/// several instances on one component JID, ejabberd routes each stanza to any of their links.
struct AnswerRelay(PeerBus);

impl ForeignAnswers for AnswerRelay {
    fn forward(&self, instance: &str, answer: Iq) {
        self.0
            .forward_answer(instance, String::from(&Element::from(answer)));
    }
}

impl RunningLink {
    /// How `/health` sees the link.
    pub fn reported(&self) -> ReportedLink {
        ReportedLink {
            link: self.link.clone(),
            mode: match self.mode {
                LinkMode::Single => "single",
                LinkMode::Shared => "shared",
            },
        }
    }
}

/// A link as `/health` reports it.
pub struct ReportedLink {
    link: ComponentLink,
    mode: &'static str,
}

impl LinkHealth for ReportedLink {
    fn jid(&self) -> String {
        self.link.jid().to_string()
    }

    fn mode(&self) -> &'static str {
        self.mode
    }

    fn state_name(&self) -> &'static str {
        let link = &self.link;
        match link.state() {
            // Between the attempts of a link that never came up (the XMPP server is not there
            // yet, or does not know the component): still connecting, as far as the operator
            // is concerned. `down` is for a link that was up and was lost.
            LinkState::Down { .. } if !link.was_ever_up() => "connecting",
            state => state.name(),
        }
    }
}
