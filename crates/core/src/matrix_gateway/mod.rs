//! The Matrix Push Gateway (spec.matrix.org, Push Gateway API v1) on the UnifiedPush
//! provider: a homeserver's `notify` for devices whose pushkey is one of pushgate's own
//! endpoints is delivered inside the process, as an RFC 8030 POST to that endpoint would be.
//! Every decision is here: what the body must look like, which pushkeys are pushgate's, what
//! the client receives, and which pushkeys the homeserver is told to forget. `pushgate-up-http`
//! maps them to HTTP.
//!
//! pushgate never sends a request for a pushkey that is not its own: the gateway is no open
//! relay, and a pushkey naming any URL (pushgate's own admin routes included) reaches nothing.

mod config;
mod notify;

pub use config::MatrixGatewayConfig;
pub use notify::{
    MAX_DEVICES, MAX_MESSAGE_BYTES, Notify, NotifyError, Rejection, own_token, rejection_of,
};
