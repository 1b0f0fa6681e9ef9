//! End-to-end support: a real Prosody or ejabberd, the real `pushgate serve` binary linked to
//! it as an external component, and what the other side of each wire needs (a c2s client
//! playing Conversations, an app server speaking RFC 8030/8291 over plain HTTP, a fake FCM).
//!
//! Each test body takes the XMPP server as a parameter, so one body runs against both.

#![allow(dead_code)]

pub mod http;
pub mod pushgate;
pub mod servers;
pub mod webpush;

use std::time::{Duration, Instant};

// Not every test binary that shares this module starts pushgate through it.
#[allow(unused_imports)]
pub use pushgate::{Pushgate, PushgateOptions};
// Not every test binary that shares this module starts a real server.
#[allow(unused_imports)]
pub use servers::{ServerKind, XmppServer};

/// The push component's JID, serving both roles over one link.
pub const COMPONENT: &str = "push.example.test";
/// The XEP-0114 shared secret between the server and pushgate.
pub const COMPONENT_SECRET: &str = "e2e-component-secret";
/// The users' domain.
pub const DOMAIN: &str = "example.test";
/// The endpoint token key pushgate seals with (standard base64 of 32 bytes).
pub const UP_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A key pushgate does not know, for foreign tokens.
pub const FOREIGN_UP_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/// Every test user's password is `{user}pass`.
pub fn password(user: &str) -> String {
    format!("{user}pass")
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns how long it took, or
/// `None` on timeout.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prints one measured number past the test harness's capture.
pub fn measured(test: &str, what: &str, took: Duration) {
    pushgate_testkit::interop::notice(&format!(
        "{test}: {what}: {:.1} ms",
        took.as_secs_f64() * 1000.0
    ));
}

/// Conversations on bind: `register-push-fcm` with `token` and `android_id`, then the
/// XEP-0357 `enable` with the answer's node and secret to the account's own server, which
/// must accept it. Returns the registration.
pub async fn register_and_enable(
    client: &pushgate_testkit::c2s_client::C2sClient,
    token: &str,
    android_id: &str,
) -> pushgate_testkit::conversations::PushRegistration {
    use pushgate_testkit::conversations::{push_enable, read_push_registration, register_push_fcm};
    let answer = client
        .iq(register_push_fcm(COMPONENT, token, android_id))
        .await
        .unwrap_or_else(|error| panic!("register-push-fcm: {error}"));
    let registration = read_push_registration(&answer, COMPONENT)
        .unwrap_or_else(|error| panic!("register-push-fcm answer: {error}"));
    let enabled = client
        .iq(push_enable(
            COMPONENT,
            &registration.node,
            &registration.secret,
        ))
        .await
        .unwrap_or_else(|error| panic!("enable: {error}"));
    assert_eq!(
        pushgate_testkit::c2s_client::stanza::stanza_type(&enabled),
        "result",
        "enable refused: {}",
        String::from(&enabled)
    );
    registration
}
