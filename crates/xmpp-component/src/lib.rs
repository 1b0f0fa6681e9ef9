//! pushgate's XEP-0114 component link and the stanza handlers of both roles.
//!
//! [`ComponentLink::spawn`] connects to the XMPP server's component port, authenticates
//! (XEP-0114 §3), and keeps the link up: reconnection with backoff, keepalive pings, limits on
//! incoming XML. It answers disco and ping itself, tracks answers to its own IQs
//! ([`ComponentLink::send_iq`]) and hands every other stanza to a [`StanzaHandler`].
//!
//! [`PushRoles`] is that handler: the list of pushgate's roles (the XEP-0357 app server and the
//! UnifiedPush provider, each a [`roles::Role`]), and [`XmppClientLink`] carries the provider's
//! pushes to clients.
//!
//! The crate is three layers, imports pointing one way (`tests/layers.rs` checks it): `roles`
//! → `link` (session, handshake, keepalive, reconnection, IQ tracker, dispatch, disco, ping,
//! and the `[component]` settings, [`ComponentSettings`]) →
//! `stream` (bytes ↔ stanzas). A role reads the IQ sets it takes on its hot path straight from
//! the bytes, through the link's hook [`StanzaHandler::read_fast`].

pub mod config;
mod link;
mod metrics;
pub mod roles;
mod stream;

pub use config::{
    ComponentConfig, DEFAULT_CONCURRENT_IQS, DEFAULT_IQ_QUEUE_WAIT, DEFAULT_QUEUED_IQS,
    DEFAULT_REQUEST_BYTES_IN_FLIGHT, ForeignAnswers, LinkGate, LinkTimeouts, ReconnectPolicy,
    XmlLimits, generate_instance_id,
};
pub use link::error::{IqError, LinkError};
pub use link::handler::{FastAnswer, FastRequest, IqReply, StanzaHandler, stanza_error};
pub use link::settings::{
    ComponentSettings, ComponentSettingsError, LinkMode, RoleName, one_or_many_components,
};
pub use link::state::LinkState;
pub use link::{ComponentLink, ConfigError};
pub use roles::{AlreadyAttached, DEFAULT_PUSH_DEADLINE, PushPublish, PushRoles, XmppClientLink};

/// The XMPP types of this crate's API, re-exported so that users need no direct dependency.
pub use xmpp_parsers;
