//! Test support for pushgate: everything a test needs to play the other side of a wire.
//!
//! Used only as a dev-dependency.

pub mod c2s_client;
pub mod ejabberd;
pub mod fake_xmpp_server;
pub mod prosody;
