//! Firebase Cloud Messaging HTTP v1 sender: OAuth2, HTTP/2 client, error classification.
//!
//! So far: the `[fcm]` settings ([`FcmConfig`]) and the service-account key they point at
//! ([`ServiceAccount`]), checked up front so `pushgate check-config` can report a bad key
//! before the first wake-up fails.

pub mod config;
pub mod private_key;
pub mod service_account;

pub use config::{AndroidPriority, DEFAULT_API_URL, FcmConfig, FcmConfigError};
pub use private_key::{PrivateKeyPem, PrivateKeyProblem};
pub use service_account::{ServiceAccount, ServiceAccountError, ServiceAccountProblem};
