//! The RFC 8030 HTTP side of the UnifiedPush provider.
//!
//! Two parts: the server plumbing every HTTP route of pushgate runs behind ([`serve`],
//! [`ServerConfig`], [`app`]: request timeout, body cap, connection cap, JSON errors, graceful
//! shutdown), and the `/push/{token}` routes ([`push_routes`]).

mod errors;
mod limits;
mod push;
mod server;

pub use errors::json_error;
pub use limits::ServerConfig;
pub use push::{UP_MAX_MESSAGE_BYTES, push_routes};
pub use server::{app, serve};
