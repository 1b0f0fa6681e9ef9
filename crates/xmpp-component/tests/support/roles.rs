//! A component link served by `PushRoles` over in-memory core services, for the role tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pushgate_core::app_server::AppServer;
use pushgate_core::clock::FixedClock;
use pushgate_core::provider::{Provider, ProviderConfig};
use pushgate_core::push_module::{PushModule, PushModules, PushModulesConfig};
use pushgate_core::test_support::ClockSleeper;
pub use pushgate_core::test_support::{MemoryStore, ScriptedWaker};
use pushgate_core::{EndpointKey, EndpointKeys, MessageStoreLimits, PushService, Store, Waker};
use pushgate_testkit::fake_xmpp_server::{FakeSession, FakeXmppServer};
use pushgate_xmpp::xmpp_parsers::jid::BareJid;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use pushgate_xmpp::{ComponentConfig, ComponentLink, LinkState, PushRoles, XmppClientLink};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{JID, STEP, config, wait_state};

/// Wall-clock time of the fixed clock: 2023-11-14T22:13:20Z.
pub const NOW: i64 = 1_700_000_000_000;
pub const PUBLIC_URL: &str = "https://up.example.test";
pub const COMPONENT_NS: &str = "jabber:component:accept";
pub const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Which roles run and how.
pub struct RolesOptions {
    pub app_server: bool,
    /// The token-in-node role in place of the app server, with the scripted waker as the APNs
    /// module `monalProdiOS` (default module).
    pub push_modules: bool,
    pub provider: bool,
    pub allowed_domains: Option<Vec<String>>,
    pub push_deadline: Duration,
}

impl Default for RolesOptions {
    fn default() -> Self {
        Self {
            app_server: true,
            push_modules: false,
            provider: true,
            allowed_domains: None,
            push_deadline: Duration::from_secs(2),
        }
    }
}

/// Everything a role test touches.
pub struct RolesHarness {
    pub server: FakeXmppServer,
    pub session: FakeSession,
    pub link: ComponentLink,
    pub task: JoinHandle<()>,
    pub shutdown: CancellationToken,
    pub roles: Arc<PushRoles>,
    pub store: Arc<MemoryStore>,
    pub waker: Arc<ScriptedWaker>,
    pub clock: Arc<FixedClock>,
    pub provider: Arc<Provider>,
    pub client_link: Arc<XmppClientLink>,
}

/// Starts a fake server and a link served by `PushRoles`, and waits for the link to be up.
pub async fn start_roles(
    options: RolesOptions,
    adjust: impl FnOnce(&mut ComponentConfig),
) -> RolesHarness {
    let server = FakeXmppServer::start(JID, super::SECRET).await.unwrap();
    let mut link_config = config(&server, JID);
    adjust(&mut link_config);
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(NOW));
    let waker = Arc::new(ScriptedWaker::default());
    let wakers: HashMap<PushService, Arc<dyn Waker>> =
        HashMap::from([(PushService::Fcm, waker.clone() as Arc<dyn Waker>)]);
    let app_server = Arc::new(AppServer::new(
        store.clone() as Arc<dyn Store>,
        wakers,
        clock.clone(),
    ));
    let client_link = Arc::new(XmppClientLink::new(options.push_deadline));
    let provider = Arc::new(Provider::new(
        EndpointKeys::single(EndpointKey::generate()),
        store.clone() as Arc<dyn Store>,
        client_link.clone(),
        clock.clone(),
        ProviderConfig {
            public_url: PUBLIC_URL.to_owned(),
            registration_ttl_ms: 7 * 24 * 3600 * 1000,
            max_message_ttl_secs: 24 * 3600,
            store_limits: MessageStoreLimits {
                max_per_owner: 100,
                max_total: 1000,
            },
            allowed_domains: options.allowed_domains,
        },
    ));
    let push_modules = options.push_modules.then(|| {
        let module = PushModule {
            service: PushService::Apns,
            waker: waker.clone() as Arc<dyn Waker>,
            sandbox: None,
        };
        Arc::new(PushModules::new(
            HashMap::from([("monalProdiOS".to_owned(), module)]),
            &PushModulesConfig {
                min_interval: Duration::ZERO,
                ..PushModulesConfig::default()
            },
            clock.clone(),
            Arc::new(ClockSleeper::new(clock.clone())),
        ))
    });
    let roles = Arc::new(PushRoles::serving(
        BareJid::new(JID).unwrap(),
        (options.app_server && !options.push_modules).then(|| app_server.clone()),
        push_modules,
        options.provider.then(|| provider.clone()),
    ));
    let shutdown = CancellationToken::new();
    let (link, task) = ComponentLink::spawn(link_config, roles.clone(), shutdown.clone()).unwrap();
    client_link.attach(link.clone()).unwrap();
    let session = server.next_session(STEP).await.expect("no session");
    wait_state(&link.watch_state(), LinkState::Connected).await;
    RolesHarness {
        server,
        session,
        link,
        task,
        shutdown,
        roles,
        store,
        waker,
        clock,
        provider,
        client_link,
    }
}

impl RolesHarness {
    /// Sends raw stanza bytes and returns the next stanza the component sends.
    pub async fn exchange(&mut self, stanza: &str) -> Element {
        self.session.send_raw(stanza.to_owned());
        self.session.recv(STEP).await.expect("no answer")
    }

    /// Stops the link and waits for the flushes.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.roles.close_and_wait().await;
    }
}

/// `(condition, type)` of an error IQ, checking that `<error/>` is in the stream's namespace
/// (docs/protocol.md A.1: no `jabber:client` on a component stream) and that the IQ is an error.
pub fn stanza_error(reply: &Element) -> (String, String) {
    assert!(reply.is("iq", COMPONENT_NS), "{reply:?}");
    assert_eq!(reply.attr("type"), Some("error"), "{}", String::from(reply));
    let error = reply.get_child("error", COMPONENT_NS).unwrap_or_else(|| {
        panic!(
            "no <error/> in the stream namespace: {}",
            String::from(reply)
        )
    });
    let condition = error
        .children()
        .find(|c| c.ns() == STANZAS_NS && c.name() != "text")
        .expect("no condition");
    (
        condition.name().to_owned(),
        error.attr("type").expect("no error type").to_owned(),
    )
}

/// Asserts an empty IQ result with the given id, from the component.
pub fn assert_empty_result(reply: &Element, id: &str) {
    assert!(reply.is("iq", COMPONENT_NS), "{reply:?}");
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        String::from(reply)
    );
    assert_eq!(reply.attr("id"), Some(id));
    assert_eq!(reply.attr("from"), Some(JID));
    assert_eq!(reply.children().count(), 0, "{}", String::from(reply));
}
