//! The real XMPP server a test body runs against, Prosody or ejabberd, behind one face.

use std::time::{Duration, Instant};

use pushgate_testkit::c2s_client::{C2sClient, C2sConfig};
use pushgate_testkit::ejabberd::{EjabberdInstance, EjabberdOptions};
use pushgate_testkit::interop::{interop_off, notice, start_or_skip};
use pushgate_testkit::prosody::{ProsodyInstance, ProsodyOptions};

use super::{COMPONENT, COMPONENT_SECRET, DOMAIN, password};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Prosody 0.12 with mod_cloud_notify.
    Prosody,
    /// ejabberd 23.01 with mod_push.
    Ejabberd,
}

impl ServerKind {
    /// What the server logs when the app server answered a publish with a `wait` error: Prosody
    /// (debug) does not count it, ejabberd (info) keeps the registration.
    pub fn wait_error_marker(self) -> &'static str {
        match self {
            Self::Prosody => "Got error <wait:recipient-unavailable",
            Self::Ejabberd => "temporarily: recipient-unavailable",
        }
    }

    /// What the server logs when a stream-managed session loses its connection and is kept
    /// for resumption.
    pub fn session_kept_marker(self) -> &'static str {
        match self {
            Self::Prosody => "Session going into hibernation",
            Self::Ejabberd => "waiting 60 seconds for stream resumption",
        }
    }

    /// What the server logs when the app server answered a publish `forbidden` (auth):
    /// Prosody counts it, ejabberd disables push for that session.
    pub fn forbidden_marker(self) -> &'static str {
        match self {
            Self::Prosody => "Got error <auth:forbidden",
            Self::Ejabberd => "disabling push: forbidden (auth)",
        }
    }
}

/// A running server with the push component configured and the given users registered.
pub enum XmppServer {
    /// A throwaway Prosody.
    Prosody(ProsodyInstance),
    /// A throwaway ejabberd.
    Ejabberd(EjabberdInstance),
}

impl XmppServer {
    /// Starts `kind` with the component and `users` (password `{user}pass`), or `None` (after
    /// printing why) when the server is not installed and `PUSHGATE_INTEROP` allows a skip.
    pub async fn start(kind: ServerKind, test: &str, users: &[&str]) -> Option<Self> {
        Self::start_with_component(kind, test, users, COMPONENT, COMPONENT_SECRET).await
    }

    /// [`start`](Self::start) with the component `jid` and its `secret` (as `pushgate init`
    /// or a first run made them) instead of the tests' own.
    pub async fn start_with_component(
        kind: ServerKind,
        test: &str,
        users: &[&str],
        jid: &str,
        secret: &str,
    ) -> Option<Self> {
        Self::start_with_components(kind, test, users, &[(jid, secret)]).await
    }

    /// [`start`](Self::start) with several components, as (JID, secret).
    pub async fn start_with_components(
        kind: ServerKind,
        test: &str,
        users: &[&str],
        components: &[(&str, &str)],
    ) -> Option<Self> {
        Self::start_configured(kind, test, users, components, "").await
    }

    /// [`start`](Self::start) for several pushgate instances: Prosody lets a new component
    /// connection replace the old one (`component_conflict_resolve = "kick_old"`), so that an
    /// instance that holds the lease can take the link from one that hangs (docs/several-instances.md).
    pub async fn start_for_instances(kind: ServerKind, test: &str, users: &[&str]) -> Option<Self> {
        let global = match kind {
            ServerKind::Prosody => "component_conflict_resolve = \"kick_old\"",
            ServerKind::Ejabberd => "",
        };
        Self::start_configured(kind, test, users, &[(COMPONENT, COMPONENT_SECRET)], global).await
    }

    async fn start_configured(
        kind: ServerKind,
        test: &str,
        users: &[&str],
        components: &[(&str, &str)],
        prosody_global: &str,
    ) -> Option<Self> {
        if interop_off(test) {
            return None;
        }
        let users: Vec<(String, String)> = users
            .iter()
            .map(|user| ((*user).to_owned(), password(user)))
            .collect();
        let components = components
            .iter()
            .map(|(jid, secret)| ((*jid).to_owned(), (*secret).to_owned()))
            .collect();
        let started = Instant::now();
        let server = match kind {
            ServerKind::Prosody => Self::Prosody(start_or_skip(
                test,
                ProsodyInstance::start(ProsodyOptions {
                    users,
                    components,
                    global_config: prosody_global.to_owned(),
                    ..ProsodyOptions::default()
                })
                .await,
            )?),
            ServerKind::Ejabberd => Self::Ejabberd(start_or_skip(
                test,
                EjabberdInstance::start(EjabberdOptions {
                    users,
                    components,
                    ..EjabberdOptions::default()
                })
                .await,
            )?),
        };
        notice(&format!(
            "{test}: {kind:?} ready in {} ms",
            started.elapsed().as_millis()
        ));
        Some(server)
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        match self {
            Self::Prosody(_) => ServerKind::Prosody,
            Self::Ejabberd(_) => ServerKind::Ejabberd,
        }
    }

    /// The c2s port on 127.0.0.1.
    pub fn c2s_port(&self) -> u16 {
        match self {
            Self::Prosody(server) => server.c2s_port(),
            Self::Ejabberd(server) => server.c2s_port(),
        }
    }

    /// The XEP-0114 port on 127.0.0.1.
    pub fn component_port(&self) -> u16 {
        match self {
            Self::Prosody(server) => server.component_port(),
            Self::Ejabberd(server) => server.component_port(),
        }
    }

    /// The server's whole log so far.
    pub fn log(&self) -> String {
        let path = match self {
            Self::Prosody(server) => server.log_path(),
            Self::Ejabberd(server) => server.log_path(),
        };
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        match self {
            Self::Prosody(server) => server.log_tail(lines),
            Self::Ejabberd(server) => server.log_tail(lines),
        }
    }

    /// How often `marker` occurs in the log.
    pub fn log_count(&self, marker: &str) -> usize {
        self.log().matches(marker).count()
    }

    /// Stops the server (SIGTERM); data and ports stay for [`start_again`](Self::start_again).
    pub async fn stop(&mut self) {
        match self {
            Self::Prosody(server) => server.stop().await,
            Self::Ejabberd(server) => server.stop().await,
        }
    }

    /// Freezes the server (SIGSTOP) or lets it go on (SIGCONT); its sockets stay open.
    pub fn freeze(&self, frozen: bool) {
        let signalled = match self {
            Self::Prosody(server) => server.freeze(frozen),
            Self::Ejabberd(server) => server.freeze(frozen),
        };
        assert!(signalled, "{:?} could not be signalled", self.kind());
    }

    /// Starts the stopped server again with the same data and ports.
    pub async fn start_again(&mut self) {
        let started = match self {
            Self::Prosody(server) => server.start_again().await,
            Self::Ejabberd(server) => server.start_again().await,
        };
        if let Err(error) = started {
            panic!("restarting {:?}: {error}", self.kind());
        }
    }

    /// Logs `user` in with a fixed resource (so a later login gets the same full JID, as
    /// Conversations keeps its resource).
    pub async fn login(&self, user: &str, resource: &str) -> C2sClient {
        let mut config = C2sConfig::new(self.c2s_port(), DOMAIN, user, &password(user));
        config.resource = resource.to_owned();
        config.timeout = Duration::from_secs(10);
        match C2sClient::connect(config).await {
            Ok(client) => client,
            Err(error) => panic!(
                "{user} cannot log in to {:?}: {error}\n{}",
                self.kind(),
                self.log_tail(40)
            ),
        }
    }
}
