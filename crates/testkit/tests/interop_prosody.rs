//! Interop tests against a real Prosody started by each test (skipped with a printed reason
//! when Prosody is not installed, unless `PUSHGATE_INTEROP=required`).
#![allow(clippy::unwrap_used)]

mod component_link;

use std::time::Instant;

use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::c2s_client::{C2sClient, C2sConfig, C2sError};
use pushgate_testkit::interop::{interop_off, notice, start_or_skip};
use pushgate_testkit::prosody::{ProsodyInstance, ProsodyOptions};

const DOMAIN: &str = "example.test";

fn users() -> Vec<(String, String)> {
    vec![
        ("alice".to_owned(), "alicepass".to_owned()),
        ("bob".to_owned(), "bobpass".to_owned()),
    ]
}

async fn prosody(test: &str) -> Option<ProsodyInstance> {
    if interop_off(test) {
        return None;
    }
    let started = Instant::now();
    let server = start_or_skip(
        test,
        ProsodyInstance::start(ProsodyOptions {
            users: users(),
            components: vec![("push.example.test".to_owned(), "s3cret".to_owned())],
            ..ProsodyOptions::default()
        })
        .await,
    )?;
    notice(&format!(
        "{test}: prosody ready in {} ms (ports open {} ms after spawn)",
        started.elapsed().as_millis(),
        server.last_start_duration().as_millis()
    ));
    Some(server)
}

async fn login(server: &ProsodyInstance, user: &str, password: &str) -> C2sClient {
    C2sClient::connect(C2sConfig::new(server.c2s_port(), DOMAIN, user, password))
        .await
        .unwrap()
}

#[tokio::test]
async fn client_logs_in_and_server_answers_ping_and_disco() {
    let Some(server) = prosody("client_logs_in_and_server_answers_ping_and_disco").await else {
        return;
    };
    let alice = login(&server, "alice", "alicepass").await;
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

#[tokio::test]
async fn wrong_password_is_rejected() {
    let Some(server) = prosody("wrong_password_is_rejected").await else {
        return;
    };
    let refused =
        C2sClient::connect(C2sConfig::new(server.c2s_port(), DOMAIN, "alice", "nope")).await;
    assert!(
        matches!(refused, Err(C2sError::AuthFailed(ref c)) if c == "not-authorized"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn message_goes_from_one_user_to_another() {
    let Some(server) = prosody("message_goes_from_one_user_to_another").await else {
        return;
    };
    let alice = login(&server, "alice", "alicepass").await;
    let mut bob = login(&server, "bob", "bobpass").await;
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

#[tokio::test]
async fn restart_keeps_ports_and_accounts() {
    let Some(mut server) = prosody("restart_keeps_ports_and_accounts").await else {
        return;
    };
    let port = server.c2s_port();
    let alice = login(&server, "alice", "alicepass").await;
    let started = Instant::now();
    server.restart().await.unwrap();
    notice(&format!(
        "restart_keeps_ports_and_accounts: prosody restart took {} ms",
        started.elapsed().as_millis()
    ));
    // The old session ends with the server.
    let mut alice = alice;
    assert!(alice.recv_where(|_| false).await.is_err());
    assert_eq!(server.c2s_port(), port);
    let alice = login(&server, "alice", "alicepass").await;
    assert_eq!(stanza_type(&alice.ping(DOMAIN).await.unwrap()), "result");
}

impl component_link::RealServer for ProsodyInstance {
    fn c2s_port(&self) -> u16 {
        ProsodyInstance::c2s_port(self)
    }
    fn component_port(&self) -> u16 {
        ProsodyInstance::component_port(self)
    }
    async fn stop(&mut self) {
        ProsodyInstance::stop(self).await;
    }
    async fn start_again(&mut self) {
        ProsodyInstance::start_again(self).await.unwrap();
    }
}

#[tokio::test]
async fn component_link_connects_and_answers_disco_and_ping() {
    let Some(server) = prosody("component_link_connects_and_answers_disco_and_ping").await else {
        return;
    };
    component_link::link_connects_and_answers_disco_and_ping(&server).await;
}

#[tokio::test]
async fn component_answers_unhandled_iq_with_service_unavailable() {
    let Some(server) = prosody("component_answers_unhandled_iq_with_service_unavailable").await
    else {
        return;
    };
    component_link::unhandled_iq_gets_service_unavailable(&server).await;
}

#[tokio::test]
async fn component_link_survives_server_restart() {
    let Some(mut server) = prosody("component_link_survives_server_restart").await else {
        return;
    };
    let reconnect = component_link::link_survives_server_restart(&mut server).await;
    notice(&format!(
        "component_link_survives_server_restart: prosody link reconnected {} ms after the ports were back",
        reconnect.as_millis()
    ));
}
