//! The RFC 8030 HTTP side of the UnifiedPush provider.
//!
//! Two parts: the server plumbing every HTTP route of pushgate runs behind ([`serve`],
//! [`ServerConfig`], [`app`], [`Routes`]: request timeout, body cap, connection cap, JSON errors, graceful
//! shutdown), and the `/push/{token}` routes ([`push_routes`]): the RFC 8030 mapping of the
//! provider's outcomes, the message size limit, and the per-endpoint and per-client rates.

mod app;
mod client_address;
mod errors;
mod limits;
mod post_message;
mod push;
mod rate_limit;
mod server;
mod strict_http1;

pub use app::{App, Routes, app};
pub use errors::json_error;
pub use limits::ServerConfig;
pub use push::{PushEndpointConfig, PushEndpointError, UP_MAX_MESSAGE_BYTES, push_routes};
pub use rate_limit::{Rate, RateLimits};
pub use server::serve;
