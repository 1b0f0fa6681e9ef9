//! Smoke test of the keepalive ping choice against real Prosody and ejabberd (skipped with a
//! printed reason when a server is not installed, unless `PUSHGATE_INTEROP=required`).
//!
//! With a short idle time and a timeout shorter than the test, an idle link survives only if
//! the server answers the keepalive pings.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use pushgate_testkit::ejabberd::{EjabberdInstance, EjabberdOptions};
use pushgate_testkit::interop::{interop_off, start_or_skip};
use pushgate_testkit::prosody::{ProsodyInstance, ProsodyOptions};
use pushgate_xmpp::{ComponentConfig, ComponentLink, LinkState, StanzaHandler};
use tokio_util::sync::CancellationToken;

const COMPONENT: &str = "push.example.test";
const SECRET: &str = "s3cret";

struct Idle;

impl StanzaHandler for Idle {}

/// Runs an idle link for several keepalive periods; panics if it ever goes down.
async fn idle_link_stays_up(component_port: u16) {
    let mut config = ComponentConfig::new(COMPONENT, "127.0.0.1", component_port, SECRET);
    config.timeouts.keepalive_idle = Duration::from_millis(300);
    config.timeouts.keepalive_timeout = Duration::from_millis(1500);
    let shutdown = CancellationToken::new();
    let (link, task) = ComponentLink::spawn(config, Arc::new(Idle), shutdown.clone()).unwrap();
    let mut states = link.watch_state();
    let up = tokio::time::timeout(Duration::from_secs(10), states.wait_for(LinkState::is_up))
        .await
        .is_ok_and(|reached| reached.is_ok());
    assert!(up, "link did not come up: {:?}", link.state());
    // Idle 300 ms → ping; unanswered it would be declared dead 1.5 s later. 4 s is several
    // rounds of that.
    let went_down = tokio::time::timeout(
        Duration::from_secs(4),
        states.wait_for(|state| !state.is_up()),
    )
    .await;
    assert!(went_down.is_err(), "link went down: {:?}", link.state());
    assert_eq!(
        link.pending_iqs(),
        0,
        "a keepalive ping is still unanswered"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn keepalive_is_answered_by_prosody() {
    let test = "keepalive_is_answered_by_prosody";
    if interop_off(test) {
        return;
    }
    let options = ProsodyOptions {
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
        ..ProsodyOptions::default()
    };
    let Some(server) = start_or_skip(test, ProsodyInstance::start(options).await) else {
        return;
    };
    idle_link_stays_up(server.component_port()).await;
}

#[tokio::test]
async fn keepalive_is_answered_by_ejabberd() {
    let test = "keepalive_is_answered_by_ejabberd";
    if interop_off(test) {
        return;
    }
    let options = EjabberdOptions {
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
        ..EjabberdOptions::default()
    };
    let Some(server) = start_or_skip(test, EjabberdInstance::start(options).await) else {
        return;
    };
    idle_link_stays_up(server.component_port()).await;
}
