//! What tests need of a real XMPP server, whichever one it is, so each interop scenario is
//! written once and run against Prosody and ejabberd alike.

use std::future::Future;

use crate::HarnessError;
use crate::ejabberd::{EjabberdInstance, EjabberdOptions};
use crate::prosody::{ProsodyInstance, ProsodyOptions};

/// Accounts and components a test server starts with.
#[derive(Clone, Debug, Default)]
pub struct ServerSetup {
    /// External components (XEP-0114) as (component JID, shared secret).
    pub components: Vec<(String, String)>,
    /// Accounts on `example.test` as (localpart, password).
    pub users: Vec<(String, String)>,
}

/// A throwaway XMPP server run by a test.
pub trait XmppServer: Sized + Send {
    /// The server's name in messages (`prosody`, `ejabberd`).
    const NAME: &'static str;

    /// Starts a server with `setup`; returns once its ports accept connections.
    fn start(setup: ServerSetup) -> impl Future<Output = Result<Self, HarnessError>> + Send;
    /// The virtual host.
    fn domain(&self) -> &str;
    /// The client-to-server port.
    fn c2s_port(&self) -> u16;
    /// The component port.
    fn component_port(&self) -> u16;
    /// The last lines of the server's log, for failure messages.
    fn log_tail(&self, lines: usize) -> String;
    /// Stops the server, keeping ports and data.
    fn stop(&mut self) -> impl Future<Output = ()> + Send;
    /// Starts it again after [`stop`](Self::stop) on the same ports and data.
    fn start_again(&mut self) -> impl Future<Output = Result<(), HarnessError>> + Send;
    /// How long the last start took until the ports accepted connections.
    fn last_start_duration(&self) -> std::time::Duration;
}

impl XmppServer for ProsodyInstance {
    const NAME: &'static str = "prosody";

    async fn start(setup: ServerSetup) -> Result<Self, HarnessError> {
        ProsodyInstance::start(ProsodyOptions {
            components: setup.components,
            users: setup.users,
            ..ProsodyOptions::default()
        })
        .await
    }
    fn domain(&self) -> &str {
        ProsodyInstance::domain(self)
    }
    fn c2s_port(&self) -> u16 {
        ProsodyInstance::c2s_port(self)
    }
    fn component_port(&self) -> u16 {
        ProsodyInstance::component_port(self)
    }
    fn log_tail(&self, lines: usize) -> String {
        ProsodyInstance::log_tail(self, lines)
    }
    async fn stop(&mut self) {
        ProsodyInstance::stop(self).await;
    }
    async fn start_again(&mut self) -> Result<(), HarnessError> {
        ProsodyInstance::start_again(self).await
    }
    fn last_start_duration(&self) -> std::time::Duration {
        ProsodyInstance::last_start_duration(self)
    }
}

impl XmppServer for EjabberdInstance {
    const NAME: &'static str = "ejabberd";

    async fn start(setup: ServerSetup) -> Result<Self, HarnessError> {
        EjabberdInstance::start(EjabberdOptions {
            components: setup.components,
            users: setup.users,
            ..EjabberdOptions::default()
        })
        .await
    }
    fn domain(&self) -> &str {
        EjabberdInstance::domain(self)
    }
    fn c2s_port(&self) -> u16 {
        EjabberdInstance::c2s_port(self)
    }
    fn component_port(&self) -> u16 {
        EjabberdInstance::component_port(self)
    }
    fn log_tail(&self, lines: usize) -> String {
        EjabberdInstance::log_tail(self, lines)
    }
    async fn stop(&mut self) {
        EjabberdInstance::stop(self).await;
    }
    async fn start_again(&mut self) -> Result<(), HarnessError> {
        EjabberdInstance::start_again(self).await
    }
    fn last_start_duration(&self) -> std::time::Duration {
        EjabberdInstance::last_start_duration(self)
    }
}
