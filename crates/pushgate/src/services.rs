//! The push services built from the settings: the XEP-0357 app server of each app with its
//! FCM and APNs senders, the token-in-node service with a sender per module, and the
//! UnifiedPush provider with its way back to clients.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pushgate_apns::{ApnsConfig, ApnsSender, ApnsSetupError};
use pushgate_core::app_server::AppServer;
use pushgate_core::client_link::ClientLink;
use pushgate_core::provider::Provider;
use pushgate_core::push_module::{PushModule, PushModules};
use pushgate_core::trace::DeliveryTrace;
use pushgate_core::{Clock, EndpointKeyError, PushService, Sleeper, Store, SystemClock, Waker};
use pushgate_fcm::{FcmConfig, FcmSender, FcmSetupError};
use pushgate_store::{HandoverTimeouts, HoldsLink, PeerBus, PeerBusError};
use pushgate_up_http::{MatrixGatewaySettings, PushEndpointConfig, Rate, RateLimits};
use pushgate_xmpp::XmppClientLink;

use crate::settings::{RoleName, Settings};

/// Why a service could not be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// An FCM sender could not start (key file, HTTP client).
    #[error("cannot start the FCM sender of {0}: {1}")]
    Fcm(String, #[source] FcmSetupError),
    /// An APNs sender could not start (key file, TLS roots).
    #[error("cannot start the APNs sender of {0}: {1}")]
    Apns(String, #[source] ApnsSetupError),
    /// An endpoint key is unusable (checked earlier; kept for a clear message).
    #[error("unified_push.keys: {0}")]
    Keys(#[from] EndpointKeyError),
    /// The channel to the other instances could not be set up (a malformed database URL).
    #[error("cannot reach the other instances through the database: {0}")]
    Peers(#[source] PeerBusError),
}

/// The services a set of links serves.
pub struct Services {
    /// The app server of each app a link with the `app_server` role names (`None`: the
    /// top-level `[fcm]` and `[apns]`).
    pub app_servers: HashMap<Option<String>, Arc<AppServer>>,
    /// The token-in-node service, when a link has the `push_modules` role.
    pub push_modules: Option<Arc<PushModules>>,
    /// The provider, when a link has the `unified_push` role and keys are set.
    pub provider: Option<Arc<Provider>>,
    /// The provider's way to clients, attached to the `unified_push` link once it is spawned.
    pub client_link: Option<Arc<XmppClientLink>>,
    /// This process's id among several instances: the first part of its links' IQ ids.
    pub instance_id: String,
    /// The other instances on the same PostgreSQL database, with whom the provider shares its
    /// kept messages (and its pushes, while another holds a `single` link).
    pub peers: Option<PeerBus>,
    /// The last deliveries per registration and per UnifiedPush account (`[metrics]
    /// trace_keys`), which both services record in.
    pub trace: Arc<DeliveryTrace>,
}

impl Services {
    /// Builds what the settings ask for over `store`.
    pub fn build(settings: &Settings, store: Arc<dyn Store>) -> Result<Self, ServicesError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let trace = Arc::new(DeliveryTrace::new(settings.metrics.trace_keys));
        let serves = |role| settings.component.iter().any(|c| c.roles.contains(&role));

        let mut app_servers = HashMap::new();
        for component in &settings.component {
            if !component.roles.contains(&RoleName::AppServer)
                || app_servers.contains_key(&component.app)
            {
                continue;
            }
            let wakers = app_wakers(settings, component.app.as_deref())?;
            let app_server = AppServer::new(store.clone(), wakers, Arc::clone(&clock))
                .with_max_devices_per_account(settings.app_server.max_devices_per_account)
                .with_trace(Arc::clone(&trace));
            app_servers.insert(component.app.clone(), Arc::new(app_server));
        }

        let push_modules = if serves(RoleName::PushModules) {
            let mut modules = HashMap::new();
            for module in &settings.push_module {
                let name = &module.name;
                let built = match (&module.apns, &module.fcm) {
                    (Some(apns), _) => PushModule {
                        service: PushService::Apns,
                        waker: apns_sender(apns, name)?,
                        sandbox: match apns.sandbox_variant() {
                            Some(sandbox) => {
                                Some(apns_sender(&sandbox, &format!("{name}-sandbox"))?)
                            }
                            None => None,
                        },
                    },
                    (None, Some(fcm)) => PushModule {
                        service: PushService::Fcm,
                        waker: fcm_sender(fcm, name)?,
                        sandbox: None,
                    },
                    // The settings checks refuse a module with neither.
                    (None, None) => continue,
                };
                modules.insert(name.clone(), built);
            }
            let service = PushModules::new(
                modules,
                &settings.push_modules,
                Arc::clone(&clock),
                Arc::new(TokioSleeper),
            )
            .with_trace(Arc::clone(&trace));
            Some(Arc::new(service))
        } else {
            None
        };

        let instance_id = pushgate_xmpp::generate_instance_id();
        let up = &settings.unified_push;
        let mut peers = None;
        let (provider, client_link) = match (&settings.http.public_url, up.keys.is_empty()) {
            (Some(public_url), false) if serves(RoleName::UnifiedPush) => {
                let keys = up.endpoint_keys()?;
                let client_link = Arc::new(XmppClientLink::new(up.push_timeout));
                let holds_link: HoldsLink = {
                    let client_link = Arc::clone(&client_link);
                    Arc::new(move || client_link.link().is_some_and(|link| link.is_up()))
                };
                let mut way_to_clients: Arc<dyn ClientLink> = Arc::clone(&client_link) as _;
                if let (true, Some(component)) = (
                    settings.shares_database(),
                    settings.unified_push_component(),
                ) {
                    let timeouts = HandoverTimeouts::new(up.push_timeout);
                    let bus = PeerBus::start(
                        &settings.database.url,
                        &component.jid,
                        &instance_id,
                        timeouts,
                    )
                    .map_err(ServicesError::Peers)?;
                    if settings.hands_over_pushes() {
                        way_to_clients =
                            Arc::new(bus.client_link(way_to_clients, Arc::clone(&holds_link)));
                    }
                    peers = Some((bus, holds_link));
                }
                let config = up.provider_config(public_url.clone());
                let mut provider = Provider::new(keys, store, way_to_clients, clock, config)
                    .with_trace(Arc::clone(&trace));
                if let Some((bus, _)) = &peers {
                    provider = provider.with_peers(Arc::new(bus.clone()));
                }
                let provider = Arc::new(provider);
                if let Some((bus, holds_link)) = &peers {
                    bus.serve(
                        Arc::clone(&provider),
                        Arc::clone(holds_link),
                        settings.hands_over_pushes(),
                    );
                }
                (Some(provider), Some(client_link))
            }
            _ => {
                if serves(RoleName::UnifiedPush) {
                    tracing::info!(
                        "unified_push role is off: it needs [unified_push] keys and [http] public_url"
                    );
                }
                (None, None)
            }
        };
        Ok(Self {
            app_servers,
            push_modules,
            provider,
            client_link,
            instance_id,
            peers: peers.map(|(bus, _)| bus),
            trace,
        })
    }
}

/// The senders of one app: `[fcm]` and `[apns]` for `None`, else those of the `[[app]]` so
/// named (the settings checks make sure it exists).
fn app_wakers(
    settings: &Settings,
    app: Option<&str>,
) -> Result<HashMap<PushService, Arc<dyn Waker>>, ServicesError> {
    let (label, fcm, apns) = match app {
        None => (
            "the default app".to_owned(),
            settings.fcm.as_ref(),
            settings.apns.as_ref(),
        ),
        Some(name) => {
            let found = settings.app.iter().find(|app| app.name == name);
            (
                format!("app {name:?}"),
                found.and_then(|app| app.fcm.as_ref()),
                found.and_then(|app| app.apns.as_ref()),
            )
        }
    };
    let mut wakers: HashMap<PushService, Arc<dyn Waker>> = HashMap::new();
    match fcm {
        Some(fcm) => {
            wakers.insert(PushService::Fcm, fcm_sender(fcm, &label)?);
        }
        None => tracing::warn!(
            app = %label,
            "no FCM settings: FCM registrations are kept, but their publishes are answered \
             recipient-unavailable (wait) until FCM is configured"
        ),
    }
    match apns {
        Some(apns) => {
            wakers.insert(PushService::Apns, apns_sender(apns, &label)?);
        }
        None => tracing::info!(
            app = %label,
            "no APNs settings: APNs registrations are kept, but their publishes are answered \
             recipient-unavailable (wait) until APNs is configured"
        ),
    }
    Ok(wakers)
}

fn fcm_sender(config: &FcmConfig, label: &str) -> Result<Arc<dyn Waker>, ServicesError> {
    let sender = FcmSender::from_config(config)
        .map_err(|error| ServicesError::Fcm(label.to_owned(), error))?;
    Ok(Arc::new(sender))
}

fn apns_sender(config: &ApnsConfig, label: &str) -> Result<Arc<dyn Waker>, ServicesError> {
    let sender = ApnsSender::from_config(config)
        .map_err(|error| ServicesError::Apns(label.to_owned(), error))?;
    Ok(Arc::new(sender))
}

/// Core's [`Sleeper`] on the tokio timer.
struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The push endpoint's settings from `[http]`, `[unified_push]` and `[matrix_gateway]` (the
/// endpoint exists only when the provider is served).
pub fn push_endpoint_config(settings: &Settings, public_url: &str) -> PushEndpointConfig {
    let up = &settings.unified_push;
    let rate = |requests: u32, burst: u32| {
        // Zero is refused by the settings checks; 1 keeps the types honest.
        Rate::per_second(
            NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN),
            NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        )
    };
    PushEndpointConfig {
        public_url: public_url.to_owned(),
        rate_limits: RateLimits {
            per_endpoint: rate(up.endpoint_rate, up.endpoint_burst),
            per_client: rate(up.client_rate, up.client_burst),
        },
        trust_forwarded_for: settings.http.trust_forwarded_for,
        matrix_gateway: settings
            .matrix_gateway
            .serves(true)
            .then(|| MatrixGatewaySettings {
                ttl_secs: settings.matrix_gateway.ttl_secs(),
            }),
    }
}
