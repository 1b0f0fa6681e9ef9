//! Test support for pushgate: everything a test needs to play the other side of a wire.
//!
//! Used only as a dev-dependency.

pub mod c2s_client;
pub mod conversations;
pub mod ejabberd;
pub mod fake_apns;
pub mod fake_fcm;
pub mod fake_xmpp_server;
pub mod free_port;
pub mod interop;
pub mod prosody;
mod server_process;
pub mod synapse;
pub mod tcp_relay;
pub mod xmpp_server;

pub use server_process::{HarnessError, log_tail};
