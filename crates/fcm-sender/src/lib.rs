//! Firebase Cloud Messaging HTTP v1 sender: OAuth2, HTTP/2 client, error classification.
//!
//! [`FcmSender`] implements `pushgate_core::Waker`: it signs the OAuth2 JWT bearer grant with
//! the service account's key ([`ServiceAccount`]), caches the access token, posts the wake-up
//! message ([`wake_message`]) and classifies FCM's answer into a `WakeOutcome`, retrying what
//! is worth retrying ([`RetryPolicy`]) within one deadline ([`FcmConfig::request_deadline`]).

mod access_token;
mod classify;
pub mod config;
mod connect;
mod connection;
mod exchange;
mod grant;
mod http1;
mod message;
mod pool;
pub mod private_key;
mod response_body;
pub mod retry;
mod sender;
pub mod service_account;
mod tls;

pub use config::{
    AndroidPriority, DEFAULT_API_URL, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONNECTIONS, FcmConfig,
    FcmConfigError,
};
pub use connect::KeepAlive;
pub use grant::{ASSERTION_LIFETIME_SECS, FCM_SCOPE, JWT_BEARER_GRANT_TYPE, UnusableKey};
pub use message::wake_message;
pub use private_key::{PrivateKeyPem, PrivateKeyProblem};
pub use retry::RetryPolicy;
pub use sender::{FcmSender, FcmSetupError};
pub use service_account::{ServiceAccount, ServiceAccountError, ServiceAccountProblem};
