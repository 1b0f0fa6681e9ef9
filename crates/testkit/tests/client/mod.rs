//! The client-side interop scenarios (the harness and the test client against a real server),
//! written once and run against each server.

use std::time::Instant;

use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::c2s_client::{C2sClient, C2sConfig, C2sError};
use pushgate_testkit::interop::{interop_off, notice, start_or_skip};
use pushgate_testkit::xmpp_server::{ServerSetup, XmppServer};

use crate::component_link::{COMPONENT, DOMAIN, SECRET};

fn setup() -> ServerSetup {
    ServerSetup {
        users: vec![
            ("alice".to_owned(), "alicepass".to_owned()),
            ("bob".to_owned(), "bobpass".to_owned()),
        ],
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
    }
}

/// Starts the server for `test`, or `None` (with a printed reason) when it is to be skipped.
pub async fn server<S: XmppServer>(test: &str) -> Option<S> {
    if interop_off(test) {
        return None;
    }
    let started = Instant::now();
    let server = start_or_skip(test, S::start(setup()).await)?;
    notice(&format!(
        "{test}: {} ready in {} ms (ports open {} ms after spawn)",
        S::NAME,
        started.elapsed().as_millis(),
        server.last_start_duration().as_millis()
    ));
    Some(server)
}

async fn login(server: &impl XmppServer, user: &str, password: &str) -> C2sClient {
    C2sClient::connect(C2sConfig::new(server.c2s_port(), DOMAIN, user, password))
        .await
        .unwrap()
}

pub async fn client_logs_in_and_server_answers_ping_and_disco(server: &impl XmppServer) {
    let alice = login(server, "alice", "alicepass").await;
    assert!(
        alice.jid().starts_with("alice@example.test/"),
        "{}",
        alice.jid()
    );
    let pong = alice.ping(DOMAIN).await.unwrap();
    assert_eq!(stanza_type(&pong), "result");
    let info = alice.disco_info(DOMAIN).await.unwrap();
    assert!(
        stanza::disco_features(&info)
            .iter()
            .any(|f| f == "urn:xmpp:ping")
    );
    alice.close().await.unwrap();
}

pub async fn wrong_password_is_rejected(server: &impl XmppServer) {
    let refused =
        C2sClient::connect(C2sConfig::new(server.c2s_port(), DOMAIN, "alice", "nope")).await;
    assert!(
        matches!(refused, Err(C2sError::AuthFailed(ref c)) if c == "not-authorized"),
        "{refused:?}"
    );
}

pub async fn message_goes_from_one_user_to_another(server: &impl XmppServer) {
    let alice = login(server, "alice", "alicepass").await;
    let mut bob = login(server, "bob", "bobpass").await;
    bob.send_presence().await.unwrap();
    // Bob's own presence comes back first once he is available (RFC 6121 §4.2.2).
    bob.recv_where(|e| e.name() == "presence").await.unwrap();
    alice
        .send(stanza::chat_message(bob.jid(), "hello bob"))
        .await
        .unwrap();
    let message = bob.recv_where(|e| e.name() == "message").await.unwrap();
    assert_eq!(message.attr("from"), Some(alice.jid()));
    let body = message
        .get_child("body", stanza::NS_CLIENT)
        .map(|b| b.text());
    assert_eq!(body.as_deref(), Some("hello bob"));
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

pub async fn restart_keeps_ports_and_accounts<S: XmppServer>(server: &mut S) {
    let port = server.c2s_port();
    let mut alice = login(server, "alice", "alicepass").await;
    let started = Instant::now();
    server.stop().await;
    server.start_again().await.unwrap();
    notice(&format!(
        "restart_keeps_ports_and_accounts: {} restart took {} ms",
        S::NAME,
        started.elapsed().as_millis()
    ));
    // The old session ends with the server.
    assert!(alice.recv_where(|_| false).await.is_err());
    assert_eq!(server.c2s_port(), port);
    let alice = login(server, "alice", "alicepass").await;
    assert_eq!(stanza_type(&alice.ping(DOMAIN).await.unwrap()), "result");
}

/// Declares every interop test for one server type.
#[macro_export]
macro_rules! interop_tests {
    ($server:ty) => {
        async fn started(test: &str) -> Option<$server> {
            client::server::<$server>(test).await
        }

        #[tokio::test]
        async fn client_logs_in_and_server_answers_ping_and_disco() {
            let Some(server) = started("client_logs_in_and_server_answers_ping_and_disco").await
            else {
                return;
            };
            client::client_logs_in_and_server_answers_ping_and_disco(&server).await;
        }

        #[tokio::test]
        async fn wrong_password_is_rejected() {
            let Some(server) = started("wrong_password_is_rejected").await else {
                return;
            };
            client::wrong_password_is_rejected(&server).await;
        }

        #[tokio::test]
        async fn message_goes_from_one_user_to_another() {
            let Some(server) = started("message_goes_from_one_user_to_another").await else {
                return;
            };
            client::message_goes_from_one_user_to_another(&server).await;
        }

        #[tokio::test]
        async fn restart_keeps_ports_and_accounts() {
            let Some(mut server) = started("restart_keeps_ports_and_accounts").await else {
                return;
            };
            client::restart_keeps_ports_and_accounts(&mut server).await;
        }

        #[tokio::test]
        async fn component_link_connects_and_answers_disco_and_ping() {
            let Some(server) = started("component_link_connects_and_answers_disco_and_ping").await
            else {
                return;
            };
            component_link::link_connects_and_answers_disco_and_ping(&server).await;
        }

        #[tokio::test]
        async fn component_answers_unhandled_iq_with_service_unavailable() {
            let Some(server) =
                started("component_answers_unhandled_iq_with_service_unavailable").await
            else {
                return;
            };
            component_link::unhandled_iq_gets_service_unavailable(&server).await;
        }

        #[tokio::test]
        async fn component_link_survives_server_restart() {
            let Some(mut server) = started("component_link_survives_server_restart").await else {
                return;
            };
            let reconnect = component_link::link_survives_server_restart(&mut server).await;
            pushgate_testkit::interop::notice(&format!(
                "component_link_survives_server_restart: {} link reconnected {} ms after the ports were back",
                <$server as pushgate_testkit::xmpp_server::XmppServer>::NAME,
                reconnect.as_millis()
            ));
        }
    };
}
