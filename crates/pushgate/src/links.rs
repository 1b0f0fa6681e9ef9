//! The component links: their settings from `[component]`, their stanza handler (the push
//! roles each one serves), and how `/health` sees them.

use std::sync::Arc;

use pushgate_xmpp::xmpp_parsers::jid::BareJid;
use pushgate_xmpp::{
    ComponentConfig, ComponentLink, ConfigError, LinkTimeouts, PushRoles, ReconnectPolicy,
    StanzaHandler, XmlLimits,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::LinkHealth;
use crate::services::Services;
use crate::settings::{ComponentSettings, Role};

/// The link's settings from one `[component]` table.
pub fn component_config(settings: &ComponentSettings) -> ComponentConfig {
    let mut config = ComponentConfig::new(
        settings.jid.clone(),
        settings.host.clone(),
        settings.port,
        settings.secret.expose(),
    );
    config.timeouts = LinkTimeouts {
        connect: settings.connect_timeout.get(),
        handshake: settings.handshake_timeout.get(),
        keepalive_idle: settings.keepalive_idle.get(),
        keepalive_timeout: settings.keepalive_timeout.get(),
        ..LinkTimeouts::default()
    };
    config.reconnect = ReconnectPolicy {
        max: settings.reconnect_max.get(),
        ..ReconnectPolicy::default()
    };
    config.limits = XmlLimits {
        max_stanza_bytes: settings.max_stanza_bytes,
        max_depth: settings.max_depth,
        max_attribute_bytes: settings.max_attribute_bytes,
        max_name_bytes: settings.max_name_bytes,
        max_attributes: settings.max_attributes,
        max_elements: settings.max_elements,
        max_form_fields: settings.max_form_fields,
        max_field_values: settings.max_field_values,
    };
    config.max_concurrent_iqs = settings.max_concurrent_iqs;
    config.max_queued_iqs = settings.max_queued_iqs;
    config.iq_queue_wait = settings.iq_queue_wait.get();
    config.max_request_bytes_in_flight = settings.max_request_bytes_in_flight;
    config
}

/// A running link with its stanza handler, which owns the link's background flushes.
pub struct RunningLink {
    /// The link.
    pub link: ComponentLink,
    /// Its task; ends after the link closed its stream on shutdown.
    pub task: JoinHandle<()>,
    /// Its handler; [`PushRoles::close_and_wait`] awaits its flushes.
    pub roles: Arc<PushRoles>,
}

/// Starts one link per `[component]` under `shutdown`, each serving the roles its settings
/// name. The link with the `unified_push` role carries the provider's pushes. If one link
/// refuses its settings, the ones already started are stopped (through `shutdown`) and awaited
/// before the error is returned.
pub async fn spawn_links(
    components: &[ComponentSettings],
    services: &Services,
    shutdown: &CancellationToken,
) -> Result<Vec<RunningLink>, ConfigError> {
    let mut started: Vec<RunningLink> = Vec::with_capacity(components.len());
    for settings in components {
        let spawned = spawn_link(settings, services, shutdown);
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
) -> Result<RunningLink, ConfigError> {
    let jid =
        BareJid::new(&settings.jid).map_err(|error| ConfigError::InvalidJid(error.to_string()))?;
    let app_server = settings
        .roles
        .contains(&Role::AppServer)
        .then(|| services.app_server.clone())
        .flatten();
    let unified_push = settings.roles.contains(&Role::UnifiedPush);
    let provider = unified_push.then(|| services.provider.clone()).flatten();
    let roles = Arc::new(PushRoles::new(jid, app_server, provider));
    let (link, task) = ComponentLink::spawn(
        component_config(settings),
        Arc::clone(&roles) as Arc<dyn StanzaHandler>,
        shutdown.clone(),
    )?;
    if unified_push && let Some(client_link) = &services.client_link {
        // Settings allow one unified_push link, so the slot is still free.
        if client_link.attach(link.clone()).is_err() {
            tracing::warn!(jid = %link.jid(), "a second unified_push link is ignored");
        }
    }
    Ok(RunningLink { link, task, roles })
}

impl LinkHealth for ComponentLink {
    fn jid(&self) -> String {
        ComponentLink::jid(self).to_string()
    }

    fn state_name(&self) -> &'static str {
        self.state().name()
    }
}
