//! The component links: their settings from `[component]`, their stanza handler, and how
//! `/health` sees them.

use std::sync::Arc;

use pushgate_xmpp::{
    ComponentConfig, ComponentLink, ConfigError, LinkTimeouts, ReconnectPolicy, StanzaHandler,
    XmlLimits,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::LinkHealth;
use crate::settings::ComponentSettings;

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
        ..XmlLimits::default()
    };
    config.max_concurrent_iqs = settings.max_concurrent_iqs;
    config
}

/// The handler of a link whose push roles are not plugged in: it declares no features beyond
/// the link's own (disco, ping), and every other IQ request is answered `service-unavailable`
/// (PROTOCOL.md A.1), which is the trait's default.
#[derive(Debug, Default)]
pub struct NoRoles;

impl StanzaHandler for NoRoles {}

/// Starts one link per `[component]` under `shutdown`. If one refuses its settings, the ones
/// already started are stopped (through `shutdown`) and awaited before the error is returned.
pub async fn spawn_links(
    components: &[ComponentSettings],
    shutdown: &CancellationToken,
) -> Result<Vec<(ComponentLink, JoinHandle<()>)>, ConfigError> {
    let handler: Arc<dyn StanzaHandler> = Arc::new(NoRoles);
    let mut started = Vec::with_capacity(components.len());
    for settings in components {
        match ComponentLink::spawn(
            component_config(settings),
            Arc::clone(&handler),
            shutdown.clone(),
        ) {
            Ok(link) => started.push(link),
            Err(error) => {
                shutdown.cancel();
                for (_, task) in started {
                    // A link task that panicked has nothing left to stop.
                    let _ = task.await;
                }
                return Err(error);
            }
        }
    }
    Ok(started)
}

impl LinkHealth for ComponentLink {
    fn jid(&self) -> String {
        ComponentLink::jid(self).to_string()
    }

    fn state_name(&self) -> &'static str {
        self.state().name()
    }
}
