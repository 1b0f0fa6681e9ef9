//! A real provider over the in-memory store, a scripted client and a fixed clock, served by the
//! push routes.

// Each test file uses part of this module.
#![allow(dead_code)]

pub mod http;
pub mod socket;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use pushgate_core::MessageStoreLimits;
use pushgate_core::clock::FixedClock;
use pushgate_core::provider::{Provider, ProviderConfig};
pub use pushgate_core::test_support::{MemoryStore, ScriptedClient};
use pushgate_core::unified_push::{EndpointKey, EndpointKeys};
use pushgate_up_http::{
    App, MatrixGatewaySettings, PushEndpointConfig, Rate, RateLimits, ServerConfig, app,
    push_routes,
};

/// 2027-01-15: before the shared vectors' tokens expire (2030).
pub const NOW: i64 = 1_800_000_000_000;
pub const APP: &str = "XrfnJea6xD8qkGQ3qnvggAgd54an0S97lkm+R7adbKA=";
pub const INSTANCE: &str = "YhKgbKyLUPep9KJmf7gXhyLL9I5eWSIZO11vXZQT0ew=";
pub const OWNER: &str = "alice@example.test/Conversations.r4nD";
pub const PUBLIC_URL: &str = "https://up.example";
/// The provider's cap on how long an undelivered message is kept.
pub const MAX_TTL_SECS: u32 = 86_400;

pub struct Fixture {
    pub clock: Arc<FixedClock>,
    pub store: Arc<MemoryStore>,
    pub client: Arc<ScriptedClient>,
    pub provider: Arc<Provider>,
}

impl Fixture {
    /// A provider sealing with a fresh key, with roomy caps on stored messages.
    pub fn new() -> Self {
        Self::with(
            EndpointKeys::single(EndpointKey::generate()),
            MessageStoreLimits {
                max_per_owner: 100,
                max_total: 1000,
            },
        )
    }

    /// A provider sealing with `keys`, keeping at most `store_limits` undelivered messages.
    pub fn with(keys: EndpointKeys, store_limits: MessageStoreLimits) -> Self {
        let clock = Arc::new(FixedClock::new(NOW));
        let store = Arc::new(MemoryStore::new());
        let client = Arc::new(ScriptedClient::new());
        let provider = Arc::new(Provider::new(
            keys,
            store.clone(),
            client.clone(),
            clock.clone(),
            ProviderConfig {
                public_url: PUBLIC_URL.into(),
                registration_ttl_ms: 7 * 86_400_000,
                max_message_ttl_secs: MAX_TTL_SECS,
                store_limits,
                allowed_domains: None,
            },
        ));
        Self {
            clock,
            store,
            client,
            provider,
        }
    }

    /// A fresh endpoint token for `owner`.
    pub fn register_owner(&self, owner: &str) -> String {
        let registration = self
            .provider
            .register(owner, "example.test", APP, INSTANCE)
            .expect("register");
        registration
            .endpoint
            .strip_prefix(&format!("{PUBLIC_URL}/push/"))
            .expect("endpoint under the public URL")
            .to_owned()
    }

    /// A fresh endpoint token for [`OWNER`].
    pub fn register(&self) -> String {
        self.register_owner(OWNER)
    }

    /// The push routes under the server plumbing, as `serve` runs them.
    pub fn router(&self, config: PushEndpointConfig) -> App {
        self.router_under(config, &server_config())
    }

    /// The push routes under the server plumbing with `server`'s limits.
    pub fn router_under(&self, config: PushEndpointConfig, server: &ServerConfig) -> App {
        let routes = push_routes(self.provider.clone(), config).expect("valid configuration");
        app(routes, server)
    }

    /// The router with limits no test reaches unless it means to.
    pub fn default_router(&self) -> App {
        self.router(endpoint_config(RateLimits {
            per_endpoint: generous(),
            per_client: generous(),
        }))
    }
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        request_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

pub fn endpoint_config(rate_limits: RateLimits) -> PushEndpointConfig {
    PushEndpointConfig {
        public_url: PUBLIC_URL.into(),
        rate_limits,
        trust_forwarded_for: false,
        matrix_gateway: Some(MatrixGatewaySettings { ttl_secs: 86_400 }),
    }
}

pub fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("non-zero")
}

/// A rate no test reaches by accident.
pub fn generous() -> Rate {
    Rate::per_second(nonzero(100_000), nonzero(100_000))
}

/// `burst` requests, then one per hour: the next one is refused whatever the machine's speed.
pub fn burst_then_hourly(burst: u32) -> Rate {
    Rate {
        requests: nonzero(1),
        per: Duration::from_secs(3600),
        burst: nonzero(burst),
    }
}
