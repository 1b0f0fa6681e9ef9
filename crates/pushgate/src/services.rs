//! The two push services built from the settings: the XEP-0357 app server with its FCM sender,
//! and the UnifiedPush provider with its way back to clients.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use pushgate_core::app_server::AppServer;
use pushgate_core::provider::Provider;
use pushgate_core::trace::DeliveryTrace;
use pushgate_core::{Clock, EndpointKeyError, PushService, Store, SystemClock, Waker};
use pushgate_fcm::{FcmSender, FcmSetupError};
use pushgate_up_http::{PushEndpointConfig, Rate, RateLimits};
use pushgate_xmpp::XmppClientLink;

use crate::settings::{RoleName, Settings};

/// Why a service could not be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The FCM sender could not start (key file, HTTP client).
    #[error("cannot start the FCM sender: {0}")]
    Fcm(#[from] FcmSetupError),
    /// An endpoint key is unusable (checked earlier; kept for a clear message).
    #[error("unified_push.keys: {0}")]
    Keys(#[from] EndpointKeyError),
}

/// The services a set of links serves.
pub struct Services {
    /// The app server, when a link has the `app_server` role.
    pub app_server: Option<Arc<AppServer>>,
    /// The provider, when a link has the `unified_push` role and keys are set.
    pub provider: Option<Arc<Provider>>,
    /// The provider's way to clients, attached to the `unified_push` link once it is spawned.
    pub client_link: Option<Arc<XmppClientLink>>,
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

        let app_server = if serves(RoleName::AppServer) {
            let mut wakers: HashMap<PushService, Arc<dyn Waker>> = HashMap::new();
            match &settings.fcm {
                Some(fcm) => {
                    let sender = FcmSender::from_config(fcm)?;
                    wakers.insert(PushService::Fcm, Arc::new(sender));
                }
                None => tracing::warn!(
                    "no [fcm] section: FCM registrations are kept, but their publishes are \
                     answered recipient-unavailable (wait) until FCM is configured"
                ),
            }
            Some(Arc::new(
                AppServer::new(store.clone(), wakers, Arc::clone(&clock))
                    .with_max_devices_per_account(settings.app_server.max_devices_per_account)
                    .with_trace(Arc::clone(&trace)),
            ))
        } else {
            None
        };

        let up = &settings.unified_push;
        let (provider, client_link) = match (&settings.http.public_url, up.keys.is_empty()) {
            (Some(public_url), false) if serves(RoleName::UnifiedPush) => {
                let keys = up.endpoint_keys()?;
                let client_link = Arc::new(XmppClientLink::new(up.push_timeout));
                let config = up.provider_config(public_url.clone());
                let provider =
                    Provider::new(keys, store, Arc::clone(&client_link) as _, clock, config)
                        .with_trace(Arc::clone(&trace));
                (Some(Arc::new(provider)), Some(client_link))
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
            app_server,
            provider,
            client_link,
            trace,
        })
    }
}

/// The push endpoint's settings from `[http]` and `[unified_push]`.
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
    }
}
