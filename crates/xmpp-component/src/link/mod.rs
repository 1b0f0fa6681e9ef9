//! The XEP-0114 link on top of the stream: handshake, session, keepalive, reconnection, the
//! tracker of our own IQs, and the dispatch of what arrives to the built-in answers (disco,
//! ping) or to the roles' handler; and the `[component]` settings a link is configured from.

pub(crate) mod backoff;
pub(crate) mod budget;
pub(crate) mod builtin;
pub(crate) mod component_link;
pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod handler;
pub(crate) mod handshake;
pub(crate) mod iq_tracker;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod state;
pub(crate) mod supervise;

pub use component_link::ComponentLink;
pub use supervise::ConfigError;
