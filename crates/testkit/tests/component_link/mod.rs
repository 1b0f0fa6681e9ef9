//! The component-link interop scenarios, written once and run against each real server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::c2s_client::{C2sClient, C2sConfig};
use pushgate_testkit::xmpp_server::XmppServer;
use pushgate_xmpp::{
    ComponentConfig, ComponentLink, LinkState, LinkTimeouts, ReconnectPolicy, StanzaHandler,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const DOMAIN: &str = "example.test";
pub const COMPONENT: &str = "push.example.test";
pub const SECRET: &str = "s3cret";
const PUSH_FEATURE: &str = "urn:xmpp:push:0";

/// A handler with one extra feature and no IQ handling (so unknown IQs get the default answer).
struct PushFeatureOnly;

impl StanzaHandler for PushFeatureOnly {
    fn features(&self) -> Vec<String> {
        vec![PUSH_FEATURE.to_owned()]
    }
}

/// A running link; cancelled and awaited when the test ends.
pub struct LinkUnderTest {
    pub link: ComponentLink,
    state: watch::Receiver<LinkState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LinkUnderTest {
    /// Spawns the link against the server's component port with short test timeouts.
    pub fn spawn(component_port: u16) -> Self {
        let mut config = ComponentConfig::new(COMPONENT, "127.0.0.1", component_port, SECRET);
        config.timeouts = LinkTimeouts {
            connect: Duration::from_secs(2),
            handshake: Duration::from_secs(2),
            ..LinkTimeouts::default()
        };
        // Short backoff so a restarted server is found again quickly.
        config.reconnect = ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            stable_after: Duration::from_secs(30),
        };
        let shutdown = CancellationToken::new();
        let (link, task) =
            ComponentLink::spawn(config, Arc::new(PushFeatureOnly), shutdown.clone())
                .expect("valid link config");
        let state = link.watch_state();
        Self {
            link,
            state,
            shutdown,
            task: Some(task),
        }
    }

    /// Waits until the state satisfies `wanted`; panics with the last state after `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&LinkState) -> bool,
    ) {
        let reached = tokio::time::timeout(timeout, self.state.wait_for(|s| wanted(s))).await;
        match reached {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("link task ended while waiting for {what}"),
            Err(_) => panic!(
                "link not {what} after {timeout:?}; state: {:?}",
                self.link.state()
            ),
        }
    }

    /// Cancels the link and waits for its task.
    pub async fn shut_down(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("link task ends after cancel")
                .expect("link task does not panic");
        }
    }
}

impl Drop for LinkUnderTest {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn login(server: &impl XmppServer, user: &str, password: &str) -> C2sClient {
    C2sClient::connect(C2sConfig::new(server.c2s_port(), DOMAIN, user, password))
        .await
        .expect("test user logs in")
}

/// Asserts that a client's disco#info and ping to the component are answered by the link.
async fn assert_component_answers(client: &C2sClient) {
    let info = client
        .disco_info(COMPONENT)
        .await
        .expect("disco#info answer");
    assert_eq!(stanza_type(&info), "result", "{info:?}");
    assert_eq!(info.attr("from"), Some(COMPONENT));
    let features = stanza::disco_features(&info);
    for feature in [PUSH_FEATURE, "urn:xmpp:ping", stanza::NS_DISCO_INFO] {
        assert!(
            features.iter().any(|f| f == feature),
            "{feature} missing in {features:?}"
        );
    }
    let pong = client.ping(COMPONENT).await.expect("ping answer");
    assert_eq!(stanza_type(&pong), "result", "{pong:?}");
}

/// The link connects, and a real client's disco#info and ping to the component are answered.
pub async fn link_connects_and_answers_disco_and_ping(server: &impl XmppServer) {
    let mut under_test = LinkUnderTest::spawn(server.component_port());
    under_test
        .wait_for("connected", Duration::from_secs(5), LinkState::is_up)
        .await;
    let alice = login(server, "alice", "alicepass").await;
    assert_component_answers(&alice).await;
    alice.close().await.expect("clean close");
    under_test.shut_down().await;
}

/// An IQ the component has no handler for is answered `service-unavailable`.
pub async fn unhandled_iq_gets_service_unavailable(server: &impl XmppServer) {
    let mut under_test = LinkUnderTest::spawn(server.component_port());
    under_test
        .wait_for("connected", Duration::from_secs(5), LinkState::is_up)
        .await;
    let alice = login(server, "alice", "alicepass").await;
    let payload = stanza::Element::bare("query", "urn:example:not-handled");
    let answer = alice
        .iq(stanza::iq("get", COMPONENT, payload))
        .await
        .expect("an answer");
    assert_eq!(stanza_type(&answer), "error", "{answer:?}");
    assert_eq!(
        stanza::error_condition(&answer).as_deref(),
        Some("service-unavailable"),
        "{answer:?}"
    );
    alice.close().await.expect("clean close");
    under_test.shut_down().await;
}

/// The server goes away and comes back: the link reports it down, reconnects within a bound
/// measured from the moment the server's ports accept again, and then answers clients again.
/// Returns the measured reconnect time.
pub async fn link_survives_server_restart(server: &mut impl XmppServer) -> Duration {
    let mut under_test = LinkUnderTest::spawn(server.component_port());
    under_test
        .wait_for("connected", Duration::from_secs(5), LinkState::is_up)
        .await;

    server.stop().await;
    under_test
        .wait_for("down", Duration::from_secs(5), |s| !s.is_up())
        .await;
    server.start_again().await.unwrap();
    let ports_back = Instant::now();
    // Record why attempts after the ports are back failed: a slow reconnect is then visibly the
    // server's (handshake refused while it finishes starting) or the link's (backoff).
    let mut failed_attempts = Vec::new();
    let deadline = ports_back + Duration::from_secs(10);
    // The state seen first was set while the server was still away.
    let mut first = true;
    loop {
        let state = under_test.state.borrow_and_update().clone();
        match state {
            LinkState::Connected => break,
            LinkState::Down { reason } if !first => failed_attempts.push(reason),
            LinkState::Down { .. } | LinkState::Connecting | LinkState::Standby => {}
        }
        first = false;
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, under_test.state.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("link not reconnected within 10 s: {failed_attempts:?}"),
        }
    }
    let reconnect = ports_back.elapsed();
    if !failed_attempts.is_empty() {
        pushgate_testkit::interop::notice(&format!(
            "attempts that failed after the ports were back: {failed_attempts:?}"
        ));
    }

    let alice = login(server, "alice", "alicepass").await;
    assert_component_answers(&alice).await;
    alice.close().await.expect("clean close");
    under_test.shut_down().await;
    assert!(
        reconnect < Duration::from_secs(3),
        "reconnect took {reconnect:?} after the ports were back"
    );
    reconnect
}
