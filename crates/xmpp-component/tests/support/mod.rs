//! Shared pieces of the link tests: a recording handler and short test settings.

#![allow(dead_code)]

pub mod app_server;
pub mod roles;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use pushgate_testkit::fake_xmpp_server::{FakeSession, FakeXmppServer};
use pushgate_xmpp::xmpp_parsers::disco::Item as DiscoItem;
use pushgate_xmpp::xmpp_parsers::iq::{Iq, IqHeader, IqRequestPayload};
use pushgate_xmpp::xmpp_parsers::jid::Jid;
use pushgate_xmpp::xmpp_parsers::message::Message;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use pushgate_xmpp::xmpp_parsers::presence::Presence;
use pushgate_xmpp::{
    ComponentConfig, ComponentLink, IqReply, LinkState, LinkTimeouts, ReconnectPolicy,
    StanzaHandler, XmlLimits,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const JID: &str = "push.example.test";
pub const SECRET: &str = "s3cret";
pub const STEP: Duration = Duration::from_secs(3);
pub const TEST_NS: &str = "urn:pushgate:test";

/// A handler that echoes `<echo xmlns='urn:pushgate:test'/>`, sleeps on `<slow/>`, and records
/// presences, messages and link-ups.
#[derive(Default)]
pub struct TestHandler {
    pub presences: Mutex<Vec<Presence>>,
    pub messages: Mutex<Vec<Message>>,
    pub link_ups: Mutex<usize>,
    pub feature: String,
}

impl TestHandler {
    pub fn with_feature(feature: &str) -> Arc<Self> {
        Arc::new(Self {
            feature: feature.to_owned(),
            ..Self::default()
        })
    }
}

#[async_trait::async_trait]
impl StanzaHandler for TestHandler {
    fn features(&self) -> Vec<String> {
        vec![self.feature.clone()]
    }

    fn items(&self, node: Option<&str>) -> Vec<DiscoItem> {
        match node {
            Some("http://jabber.org/protocol/commands") => vec![DiscoItem {
                jid: Jid::new(JID).unwrap(),
                node: Some("register-push-fcm".into()),
                name: Some("Register".into()),
            }],
            _ => Vec::new(),
        }
    }

    async fn handle_iq(
        &self,
        link: &ComponentLink,
        _request: &IqHeader,
        payload: IqRequestPayload,
    ) -> Option<IqReply> {
        let IqRequestPayload::Set(element) = payload else {
            return None;
        };
        if element.is("ask", TEST_NS) {
            // Asks the user something and relays the answer's payload.
            let question = Iq::from_get(String::new(), pushgate_xmpp::xmpp_parsers::ping::Ping)
                .with_to(jid("alice@example.test/phone"));
            return match link.send_iq(question, Duration::from_secs(2)).await {
                Ok(Iq::Result { .. }) => Some(IqReply::result(element)),
                _ => None,
            };
        }
        if element.is("slow", TEST_NS) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Some(IqReply::result(element));
        }
        element
            .is("echo", TEST_NS)
            .then(|| IqReply::result(element))
    }

    async fn handle_presence(&self, _link: &ComponentLink, presence: Presence) {
        self.presences.lock().unwrap().push(presence);
    }

    async fn handle_message(&self, _link: &ComponentLink, message: Message) {
        self.messages.lock().unwrap().push(message);
    }

    async fn link_up(&self, _link: &ComponentLink) {
        *self.link_ups.lock().unwrap() += 1;
    }
}

/// Test settings: short deadlines, keepalive out of the way unless a test lowers it.
pub fn config(server: &FakeXmppServer, jid: &str) -> ComponentConfig {
    ComponentConfig {
        jid: jid.to_owned(),
        host: "127.0.0.1".to_owned(),
        port: server.port(),
        secret: SECRET.to_owned(),
        instance_id: "t1".to_owned(),
        timeouts: LinkTimeouts {
            connect: Duration::from_secs(2),
            handshake: Duration::from_secs(2),
            keepalive_idle: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            iq: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(2),
        },
        reconnect: ReconnectPolicy::default(),
        limits: XmlLimits::default(),
        outbound_queue: 64,
        max_concurrent_iqs: 8,
        max_queued_iqs: pushgate_xmpp::DEFAULT_QUEUED_IQS,
        iq_queue_wait: pushgate_xmpp::DEFAULT_IQ_QUEUE_WAIT,
        max_request_bytes_in_flight: pushgate_xmpp::DEFAULT_REQUEST_BYTES_IN_FLIGHT,
        gate: None,
        foreign_answers: None,
    }
}

/// A started link with its pieces.
pub struct Running {
    pub link: ComponentLink,
    pub task: JoinHandle<()>,
    pub shutdown: CancellationToken,
    pub handler: Arc<TestHandler>,
}

pub fn start(config: ComponentConfig, handler: Arc<TestHandler>) -> Running {
    let shutdown = CancellationToken::new();
    let (link, task) = ComponentLink::spawn(config, handler.clone(), shutdown.clone()).unwrap();
    Running {
        link,
        task,
        shutdown,
        handler,
    }
}

/// A fake server and a link connected to it, with the server's session.
pub async fn connected(
    adjust: impl FnOnce(&mut ComponentConfig),
) -> (FakeXmppServer, Running, FakeSession) {
    let server = FakeXmppServer::start(JID, SECRET).await.unwrap();
    let mut config = config(&server, JID);
    adjust(&mut config);
    let running = start(
        config,
        TestHandler::with_feature("urn:pushgate:test:feature"),
    );
    let session = server.next_session(STEP).await.expect("no session");
    wait_state(&running.link.watch_state(), LinkState::Connected).await;
    (server, running, session)
}

/// Waits until the link reaches a state with the same name as `want`.
pub async fn wait_state(watch: &watch::Receiver<LinkState>, want: LinkState) -> LinkState {
    let mut watch = watch.clone();
    let state = tokio::time::timeout(STEP, watch.wait_for(|state| state.name() == want.name()))
        .await
        .expect("state not reached in time")
        .expect("link task gone");
    state.clone()
}

pub fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

/// An IQ get/set from a user to the component, as the server would deliver it.
pub fn request(id: &str, set: bool, payload: Element) -> Iq {
    let (from, to) = (Some(jid("alice@example.test/phone")), Some(jid(JID)));
    if set {
        Iq::Set {
            from,
            to,
            id: id.to_owned(),
            payload,
        }
    } else {
        Iq::Get {
            from,
            to,
            id: id.to_owned(),
            payload,
        }
    }
}

pub fn ping_request(id: &str) -> Iq {
    request(id, false, Element::builder("ping", "urn:xmpp:ping").build())
}

/// The condition name and type of an error IQ.
pub fn error_of(iq: &Iq) -> Option<(String, String)> {
    let Iq::Error { error, .. } = iq else {
        return None;
    };
    let condition = Element::from(error.clone())
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())?;
    let type_ = Element::from(error.clone()).attr("type")?.to_owned();
    Some((condition, type_))
}
