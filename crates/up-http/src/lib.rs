//! The RFC 8030 HTTP side of the UnifiedPush provider.
//!
//! Two parts: the server plumbing every HTTP route of pushgate runs behind ([`serve`],
//! [`ServerConfig`], [`app`], [`Routes`]: request, head and body timeouts, body cap, connection
//! caps, JSON errors, graceful shutdown; [`raise_open_files_limit`] for the file descriptors
//! the connections need), and the `/push/{token}` routes ([`push_routes`]): the RFC 8030 mapping of the
//! provider's outcomes, the message size limit, and the per-endpoint and per-client rates; with
//! them, the Matrix Push Gateway on `/_matrix/push/v1/notify` ([`MatrixGatewaySettings`]).

mod app;
mod client_address;
mod connection;
mod connection_registry;
mod connection_watch;
mod errors;
mod http_config;
mod limits;
mod matrix_gateway;
mod metrics;
mod open_files;
mod post_message;
mod push;
mod rate_limit;
mod request_body;
mod server;
mod strict_http1;

pub use app::{App, Routes, app};
pub use errors::json_error;
pub use http_config::{HttpConfig, HttpConfigError};
pub use limits::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, ServerConfig};
pub use matrix_gateway::{MAX_NOTIFY_BYTES, MatrixGatewaySettings};
pub use open_files::{OpenFilesLimit, OpenFilesLimitError, raise_open_files_limit};
pub use push::{PushEndpointConfig, PushEndpointError, UP_MAX_MESSAGE_BYTES, push_routes};
pub use rate_limit::{Rate, RateLimits};
pub use server::serve;
