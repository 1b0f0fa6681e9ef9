//! pushgate: a XEP-0357 app server and a UnifiedPush provider over one XMPP component link.
//!
//! The binary's parts: the command line ([`cli`]), the one-off commands ([`commands`]), the settings ([`settings`]) and their stand-in when there is no file ([`first_run`]), logging
//! ([`logging`]), the component links ([`links`]), the `/health` route ([`health`]) and the wiring of everything under one
//! shutdown token ([`serve`]).

pub mod cli;
pub mod commands;
pub mod first_run;
pub mod health;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod services;
pub mod settings;
pub mod shutdown;
