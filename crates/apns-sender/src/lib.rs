//! Apple Push Notification service sender: token-based authentication, the wake-up payload,
//! error classification, over the shared upstream HTTP client (`pushgate-upstream-http`).
//!
//! [`ApnsSender`] implements `pushgate_core::Waker`: it signs one ES256 provider token (JWT)
//! with the team's `.p8` key ([`SigningKey`]) and shares it between every connection, signing
//! anew every 50 minutes (Apple wants it between 20 and 60); it posts the payload chosen for
//! the app ([`ApnsConfig::payload`]) to `/3/device/{token}` with the app's topic, and
//! classifies Apple's answer into a `WakeOutcome`, retrying what is worth
//! retrying within one deadline ([`ApnsConfig::request_deadline`]).

mod classify;
pub mod config;
mod metrics;
pub mod payload;
mod provider_token;
mod sender;
pub mod signing_key;

pub use config::{
    ApnsConfig, ApnsConfigError, ApnsEnvironment, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONNECTIONS,
    PRODUCTION_URL, PayloadKind, SANDBOX_URL,
};
pub use provider_token::{MIN_RESIGN_AFTER, RESIGN_AFTER};
pub use pushgate_upstream_http::RetryPolicy;
pub use pushgate_upstream_http::TlsRoots;
pub use sender::{ApnsSender, ApnsSetupError, SenderOptions};
pub use signing_key::{SigningKey, SigningKeyProblem};
