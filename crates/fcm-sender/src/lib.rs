//! Firebase Cloud Messaging HTTP v1 sender: OAuth2, the wake-up message, error classification,
//! over the shared upstream HTTP client (`pushgate-upstream-http`).
//!
//! [`FcmSender`] implements `pushgate_core::Waker`: it signs the OAuth2 JWT bearer grant with
//! the service account's key ([`ServiceAccount`]), caches the access token, posts the wake-up
//! message ([`wake_message`]) and classifies FCM's answer into a `WakeOutcome`, retrying what
//! is worth retrying ([`RetryPolicy`]) within one deadline ([`FcmConfig::request_deadline`]).

mod access_token;
mod classify;
pub mod config;
mod grant;
mod message;
mod metrics;
pub mod private_key;
mod response_body;
mod sender;
pub mod service_account;
mod token_client;

pub use config::{
    AndroidPriority, DEFAULT_API_URL, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONNECTIONS, FcmConfig,
    FcmConfigError,
};
pub use grant::{ASSERTION_LIFETIME_SECS, FCM_SCOPE, JWT_BEARER_GRANT_TYPE, UnusableKey};
pub use message::wake_message;
pub use private_key::{PrivateKeyPem, PrivateKeyProblem};
pub use pushgate_upstream_http::KeepAlive;
pub use pushgate_upstream_http::RetryPolicy;
pub use sender::{FcmSender, FcmSetupError};
pub use service_account::{ServiceAccount, ServiceAccountError, ServiceAccountProblem};
