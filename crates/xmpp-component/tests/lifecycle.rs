//! The life of a link: handshake, IQ tracking, reconnection, keepalive, several links,
//! shutdown.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use pushgate_testkit::fake_xmpp_server::{FakeXmppServer, FromComponent};
use pushgate_xmpp::xmpp_parsers::iq::Iq;
use pushgate_xmpp::xmpp_parsers::minidom::Element;
use pushgate_xmpp::xmpp_parsers::ping::Ping;
use pushgate_xmpp::{IqError, LinkError, LinkState, ReconnectPolicy};
use support::*;

fn down() -> LinkState {
    LinkState::Down {
        reason: String::new(),
    }
}

#[tokio::test]
async fn handshake_succeeds_and_the_link_is_up() {
    let (server, running, session) = connected(|_| ()).await;
    assert_eq!(server.handshakes(), 1);
    assert_eq!(session.stream_to(), Some(JID));
    assert_eq!(running.link.state(), LinkState::Connected);
    assert_eq!(running.link.state().name(), "up");
    assert_eq!(running.link.jid().to_string(), JID);
}

#[tokio::test]
async fn wrong_secret_is_reported_distinctly_and_retried() {
    let server = FakeXmppServer::start(JID, "another-secret").await.unwrap();
    let mut config = config(&server, JID);
    config.reconnect = ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
        stable_after: Duration::from_secs(30),
    };
    let running = start(config, TestHandler::with_feature("f"));
    let LinkState::Down { reason } = wait_state(&running.link.watch_state(), down()).await else {
        unreachable!()
    };
    assert!(reason.contains("not-authorized"), "{reason}");
    assert!(reason.contains("secret"), "{reason}");
    tokio::time::timeout(STEP, async {
        while server.rejected_handshakes() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("handshake not retried");
    assert_eq!(server.handshakes(), 0);
    assert_eq!(
        running.link.send(Iq::empty_result(jid("a@b"), "x")).await,
        Err(LinkError::Down)
    );
}

fn user_ping() -> Iq {
    Iq::from_get(String::new(), Ping).with_to(jid("alice@example.test/phone"))
}

#[tokio::test]
async fn send_iq_is_answered_by_id_and_sender() {
    let (_server, running, mut session) = connected(|_| ()).await;
    let link = running.link.clone();
    let asked = tokio::spawn(async move { link.send_iq(user_ping(), STEP).await });
    let request = session.recv_iq(STEP).await.expect("IQ not sent");
    let id = request.id().to_owned();
    assert!(id.starts_with("t1."), "id {id} lacks the instance");
    assert_eq!(request.from(), Some(&jid(JID)));
    // A spoofed answer: right id, wrong sender. It must be ignored.
    let mut spoofed =
        Iq::empty_result(jid(JID), id.clone()).with_from(jid("mallory@example.test/x"));
    spoofed = spoofed.with_id(id.clone());
    session.send(spoofed);
    // An answer nobody asked for: dropped.
    session.send(Iq::empty_result(jid(JID), "t1.999").with_from(jid("alice@example.test/phone")));
    let answer = Iq::Result {
        from: Some(jid("alice@example.test/phone")),
        to: Some(jid(JID)),
        id,
        payload: Some(Element::builder("marker", TEST_NS).build()),
    };
    session.send(answer.clone());
    assert_eq!(asked.await.unwrap(), Ok(answer));
    assert_eq!(running.link.pending_iqs(), 0);
}

#[tokio::test]
async fn send_iq_error_answers_are_returned() {
    let (_server, running, mut session) = connected(|_| ()).await;
    let link = running.link.clone();
    let asked = tokio::spawn(async move { link.send_iq(user_ping(), STEP).await });
    let request = session.recv_iq(STEP).await.expect("IQ not sent");
    session.send_raw(format!(
        "<iq type='error' from='alice@example.test/phone' to='{JID}' id='{}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        request.id()
    ));
    let answer = asked.await.unwrap().unwrap();
    assert_eq!(
        error_of(&answer),
        Some(("item-not-found".into(), "cancel".into()))
    );
}

#[tokio::test]
async fn send_iq_times_out() {
    let (_server, running, mut session) = connected(|_| ()).await;
    let started = Instant::now();
    let result = running
        .link
        .send_iq(user_ping(), Duration::from_millis(200))
        .await;
    assert_eq!(result, Err(IqError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(session.recv_iq(STEP).await.is_some(), "the IQ was sent");
    assert_eq!(running.link.pending_iqs(), 0);
}

#[tokio::test]
async fn send_iq_fails_at_once_when_the_link_drops() {
    let (_server, running, mut session) = connected(|_| ()).await;
    let link = running.link.clone();
    let asked =
        tokio::spawn(async move { link.send_iq(user_ping(), Duration::from_secs(30)).await });
    session.recv_iq(STEP).await.expect("IQ not sent");
    let dropped = Instant::now();
    session.drop_connection();
    let result = tokio::time::timeout(Duration::from_secs(1), asked)
        .await
        .expect("still waiting");
    assert_eq!(result.unwrap(), Err(IqError::LinkDown));
    eprintln!("pending IQ failed {:?} after the drop", dropped.elapsed());
}

#[tokio::test]
async fn send_iq_needs_a_request_with_an_address() {
    let (_server, running, _session) = connected(|_| ()).await;
    let no_to = Iq::from_get(String::new(), Ping);
    assert_eq!(
        running.link.send_iq(no_to, STEP).await,
        Err(IqError::NotARequest)
    );
    let result = Iq::empty_result(jid("a@example.test"), "x");
    assert_eq!(
        running.link.send_iq(result, STEP).await,
        Err(IqError::NotARequest)
    );
}

#[tokio::test]
async fn reconnects_within_a_second_after_the_server_drops_the_link() {
    // Default policy: the first retry must come within 1 s (docs/protocol.md A.1).
    let (server, running, session) = connected(|_| ()).await;
    let states = running.link.watch_state();
    let dropped = Instant::now();
    session.drop_connection();
    wait_state(&states, down()).await;
    let mut again = server.next_session(STEP).await.expect("no reconnect");
    let delay = dropped.elapsed();
    eprintln!("reconnected {delay:?} after the drop");
    assert!(delay < Duration::from_secs(1), "reconnect took {delay:?}");
    wait_state(&states, LinkState::Connected).await;
    again.send(ping_request("p"));
    assert!(again.recv_iq(STEP).await.is_some());
    assert_eq!(*running.handler.link_ups.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_link_that_keeps_dropping_is_retried_within_a_second_every_time() {
    // The flapping link: every session works, then its TCP connection is reset.
    let (server, _running, mut session) = connected(|_| ()).await;
    let mut waits = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        session.send(ping_request("alive"));
        assert!(session.recv_iq(STEP).await.is_some(), "the session worked");
        let dropped = Instant::now();
        session.drop_connection();
        session = server.next_session(STEP).await.expect("no reconnect");
        waits.push(dropped.elapsed());
    }
    eprintln!("reconnect waits: {waits:?}");
    assert!(
        waits.iter().all(|wait| *wait < Duration::from_secs(1)),
        "{waits:?}"
    );
}

#[tokio::test]
async fn a_server_that_drops_every_session_at_once_is_retried_ever_more_slowly() {
    let (server, _running, session) = connected(|c| {
        c.reconnect = ReconnectPolicy {
            initial: Duration::from_millis(40),
            max: Duration::from_secs(5),
            stable_after: Duration::from_secs(1),
        }
    })
    .await;
    let mut session = session;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let dropped = Instant::now();
        session.drop_connection();
        session = server.next_session(STEP).await.expect("no reconnect");
        waits.push(dropped.elapsed());
    }
    eprintln!("crash-loop waits: {waits:?}");
    // Jittered into [base/2, base]: the fifth base is 16 times the first.
    assert!(waits[4] >= Duration::from_millis(300), "{waits:?}");
    assert!(waits[0] < Duration::from_millis(200), "{waits:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_reported_as_closed_not_as_an_xml_error() {
    // Prosody and ejabberd close the socket on shutdown without a stream footer.
    let (_server, running, session) = connected(|_| ()).await;
    let states = running.link.watch_state();
    session.drop_connection();
    let state = wait_state(&states, down()).await;
    assert_eq!(
        state,
        LinkState::Down {
            reason: "the server closed the connection without ending the stream".to_owned()
        }
    );
}

#[tokio::test]
async fn keeps_retrying_while_the_server_refuses() {
    let (server, running, session) = connected(|c| {
        c.reconnect = ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            stable_after: Duration::from_secs(30),
        }
    })
    .await;
    server.refuse_next(4);
    session.close_stream();
    let _again = server
        .next_session(STEP)
        .await
        .expect("no reconnect after refusals");
    assert_eq!(server.connections(), 6);
    wait_state(&running.link.watch_state(), LinkState::Connected).await;
}

#[tokio::test]
async fn server_stream_close_is_answered_and_reconnected() {
    let (server, running, mut session) = connected(|_| ()).await;
    let states = running.link.watch_state();
    session.close_stream();
    assert!(matches!(
        session.next_event(STEP).await,
        Some(FromComponent::StreamEnd)
    ));
    let LinkState::Down { reason } = wait_state(&states, down()).await else {
        unreachable!()
    };
    assert!(reason.contains("closed the stream"), "{reason}");
    assert!(server.next_session(STEP).await.is_some());
}

#[tokio::test]
async fn keepalive_pings_and_declares_a_silent_link_dead() {
    let (server, running, mut session) = connected(|c| {
        c.timeouts.keepalive_idle = Duration::from_millis(200);
        c.timeouts.keepalive_timeout = Duration::from_millis(300);
    })
    .await;
    let states = running.link.watch_state();
    let quiet = Instant::now();
    let first = session.recv_iq(STEP).await.expect("no keepalive ping");
    let second = session
        .recv_iq(STEP)
        .await
        .expect("no second keepalive ping");
    let pinged = quiet.elapsed();
    let mut targets: Vec<String> = [&first, &second]
        .iter()
        .map(|iq| iq.to().map(|to| to.to_string()).unwrap_or_default())
        .collect();
    targets.sort();
    assert_eq!(targets, ["example.test", JID]);
    assert!(matches!(first, Iq::Get { .. }));
    let LinkState::Down { reason } = wait_state(&states, down()).await else {
        unreachable!()
    };
    let dead = quiet.elapsed();
    eprintln!("pinged after {pinged:?}, declared dead after {dead:?}");
    assert!(reason.contains("keepalive"), "{reason}");
    assert!(
        dead >= Duration::from_millis(500),
        "declared dead too early: {dead:?}"
    );
    assert!(
        server.next_session(STEP).await.is_some(),
        "no reconnect after a dead link"
    );
}

#[tokio::test]
async fn answered_keepalive_keeps_the_link_up() {
    let (server, running, _session) = connected(|c| {
        c.timeouts.keepalive_idle = Duration::from_millis(100);
        c.timeouts.keepalive_timeout = Duration::from_millis(200);
    })
    .await;
    server.answer_pings(true);
    let mut states = running.link.watch_state();
    states.borrow_and_update();
    // Ten idle periods, each longer than idle + timeout would allow without answers.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !states.has_changed().unwrap(),
        "state changed: {:?}",
        running.link.state()
    );
    assert_eq!(server.handshakes(), 1);
    // Pings come and go; each is answered, so the table empties between them.
    tokio::time::timeout(STEP, async {
        while running.link.pending_iqs() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("keepalive pings left unanswered");
}

#[tokio::test]
async fn two_links_in_one_process_keep_separate_state() {
    let server_a = FakeXmppServer::start("p2.example.test", SECRET)
        .await
        .unwrap();
    let server_b = FakeXmppServer::start("up.example.test", SECRET)
        .await
        .unwrap();
    let mut config_a = config(&server_a, "p2.example.test");
    config_a.instance_id = "ia".into();
    let mut config_b = config(&server_b, "up.example.test");
    config_b.instance_id = "ib".into();
    let a = start(config_a, TestHandler::with_feature("urn:a"));
    let b = start(config_b, TestHandler::with_feature("urn:b"));
    let session_a = server_a.next_session(STEP).await.unwrap();
    let mut session_b = server_b.next_session(STEP).await.unwrap();
    wait_state(&a.link.watch_state(), LinkState::Connected).await;
    wait_state(&b.link.watch_state(), LinkState::Connected).await;

    session_a.drop_connection();
    wait_state(&a.link.watch_state(), down()).await;
    assert_eq!(b.link.state(), LinkState::Connected);

    let link_b = b.link.clone();
    let asked = tokio::spawn(async move { link_b.send_iq(user_ping(), STEP).await });
    let request = session_b.recv_iq(STEP).await.unwrap();
    assert!(request.id().starts_with("ib."));
    assert_eq!(request.from(), Some(&jid("up.example.test")));
    session_b.send(
        Iq::empty_result(jid("up.example.test"), request.id())
            .with_from(jid("alice@example.test/phone")),
    );
    assert!(asked.await.unwrap().is_ok());

    assert!(server_a.next_session(STEP).await.is_some());
    assert_eq!((server_a.handshakes(), server_b.handshakes()), (2, 1));
}

#[tokio::test]
async fn shutdown_lets_handlers_answer_then_closes_the_stream() {
    let (_server, running, mut session) = connected(|_| ()).await;
    session.send(request(
        "slow1",
        true,
        Element::builder("slow", TEST_NS).build(),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.shutdown.cancel();
    let reply = session
        .recv_iq(STEP)
        .await
        .expect("in-flight handler reply lost");
    assert_eq!(reply.id(), "slow1");
    assert!(matches!(
        session.next_event(STEP).await,
        Some(FromComponent::StreamEnd)
    ));
    assert!(matches!(
        session.next_event(STEP).await,
        Some(FromComponent::Closed)
    ));
    tokio::time::timeout(STEP, running.task)
        .await
        .expect("link task did not end")
        .unwrap();
    assert_eq!(running.link.state().name(), "down");
    assert_eq!(running.link.send(user_ping()).await, Err(LinkError::Down));
}

#[tokio::test]
async fn shutdown_still_takes_answers_but_turns_new_requests_away() {
    let (_server, running, mut session) = connected(|_| ()).await;
    session.send(request(
        "ask1",
        true,
        Element::builder("ask", TEST_NS).build(),
    ));
    let question = session.recv_iq(STEP).await.expect("handler did not ask");
    running.shutdown.cancel();
    wait_state(&running.link.watch_state(), down()).await;
    session.send(request(
        "late",
        true,
        Element::builder("echo", TEST_NS).build(),
    ));
    let turned_away = session
        .recv_iq(STEP)
        .await
        .expect("late request not answered");
    assert_eq!(turned_away.id(), "late");
    assert_eq!(
        error_of(&turned_away),
        Some(("resource-constraint".into(), "wait".into()))
    );
    session
        .send(Iq::empty_result(jid(JID), question.id()).with_from(jid("alice@example.test/phone")));
    let reply = session.recv_iq(STEP).await.expect("handler reply lost");
    assert!(
        matches!(&reply, Iq::Result { id, .. } if id == "ask1"),
        "{reply:?}"
    );
    assert!(matches!(
        session.next_event(STEP).await,
        Some(FromComponent::StreamEnd)
    ));
    tokio::time::timeout(STEP, running.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn misaddressed_stanzas_are_refused_and_the_link_stays_up() {
    let (_server, running, mut session) = connected(|_| ()).await;
    let no_to = Iq::from_get("x".to_owned(), Ping);
    assert!(matches!(
        running.link.send(no_to).await,
        Err(LinkError::Misaddressed(_))
    ));
    let foreign = user_ping().with_from(jid("other.example.test"));
    assert!(matches!(
        running.link.try_send(foreign),
        Err(LinkError::Misaddressed(_))
    ));
    let foreign = user_ping().with_from(jid("other.example.test"));
    assert!(matches!(
        running.link.send_iq(foreign, STEP).await,
        Err(IqError::Misaddressed(_))
    ));
    // A user-part address in the component's domain is fine.
    let own_user = user_ping()
        .with_id("u".into())
        .with_from(jid("someone@push.example.test"));
    running.link.send(own_user).await.unwrap();
    let sent = session.recv_iq(STEP).await.expect("not sent");
    assert_eq!(sent.from(), Some(&jid("someone@push.example.test")));
    assert_eq!(running.link.state(), LinkState::Connected);
}

#[tokio::test]
async fn request_uses_the_configured_iq_deadline() {
    let (_server, running, _session) =
        connected(|c| c.timeouts.iq = Duration::from_millis(150)).await;
    let started = Instant::now();
    assert_eq!(
        running.link.request(user_ping()).await,
        Err(IqError::Timeout)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(format!("{:?}", running.link).contains("push.example.test"));
}

#[tokio::test]
async fn a_gated_link_connects_only_while_its_gate_is_open_and_drops_at_once_when_it_closes() {
    let server = FakeXmppServer::start(JID, SECRET).await.unwrap();
    let mut config = config(&server, JID);
    let (gate, gated) = tokio::sync::watch::channel(None);
    config.gate = Some(gated);
    let running = start(config, TestHandler::with_feature("f"));
    wait_state(&running.link.watch_state(), LinkState::Standby).await;
    assert_eq!(running.link.state().name(), "standby");
    assert!(
        server
            .next_session(Duration::from_millis(300))
            .await
            .is_none(),
        "no connection while another instance holds the link"
    );
    gate.send_replace(Some(tokio::time::Instant::now()));
    let mut session = server
        .next_session(STEP)
        .await
        .expect("connects once opened");
    wait_state(&running.link.watch_state(), LinkState::Connected).await;
    // The lease is lost: the session is dropped at once, without waiting for anything.
    let closed_at = Instant::now();
    gate.send_replace(None);
    loop {
        match session.next_event(STEP).await {
            Some(FromComponent::Closed) => break,
            Some(_) => {}
            None => panic!("the session was not dropped"),
        }
    }
    assert!(closed_at.elapsed() < Duration::from_secs(1));
    wait_state(&running.link.watch_state(), LinkState::Standby).await;
    assert_eq!(
        running.link.send(Iq::empty_result(jid("a@b"), "x")).await,
        Err(LinkError::Down)
    );
    // Opened again, it connects again.
    gate.send_replace(Some(tokio::time::Instant::now()));
    server.next_session(STEP).await.expect("connects again");
    wait_state(&running.link.watch_state(), LinkState::Connected).await;
}

/// A link under a lease (several instances, one holds the link): it stands by while the lease
/// is held elsewhere, drops its session the moment the lease is lost, and after a session
/// ends connects again only on a lease check started after that end. An instance frozen
/// (SIGSTOP) while another took the lease wakes with the old check as its last word: it must
/// not reconnect on it.
#[tokio::test]
async fn a_gated_link_stands_by_is_fenced_and_reconnects_only_on_a_fresh_check() {
    let server = FakeXmppServer::start(JID, SECRET).await.unwrap();
    let mut config = config(&server, JID);
    config.reconnect = ReconnectPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
        stable_after: Duration::from_secs(30),
    };
    let (gate, gated) = tokio::sync::watch::channel(None);
    config.gate = Some(gated);
    let running = start(config, TestHandler::with_feature("f"));
    let states = running.link.watch_state();
    wait_state(&states, LinkState::Standby).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0, "a standby connected");

    // The lease is taken: the link comes up.
    gate.send_replace(Some(tokio::time::Instant::now()));
    let session = server.next_session(STEP).await.expect("no session");
    wait_state(&states, LinkState::Connected).await;

    // The server ends the session (another holder replaced this one). The last check is from
    // before the end: no reconnection on it.
    let checked_before = tokio::time::Instant::now();
    session.drop_connection();
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.send_replace(Some(checked_before));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.connections(), 1, "reconnected on a stale check");

    // A check started after the end: it may reconnect.
    gate.send_replace(Some(tokio::time::Instant::now()));
    let session = server.next_session(STEP).await.expect("no reconnection");
    wait_state(&states, LinkState::Connected).await;
    assert_eq!(server.connections(), 2);

    // A check that arrives while the session runs changes nothing.
    gate.send_replace(Some(tokio::time::Instant::now()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 2);
    assert!(running.link.is_up());
    drop(session);
}

/// Records the answers to other instances' IQs.
#[derive(Default)]
struct ForeignRecorder(std::sync::Mutex<Vec<(String, String)>>);

impl pushgate_xmpp::ForeignAnswers for ForeignRecorder {
    fn forward(&self, instance: &str, answer: Iq) {
        self.0
            .lock()
            .unwrap()
            .push((instance.to_owned(), answer.id().to_owned()));
    }
}

/// Several instances on one component JID (ejabberd routes each stanza to any of their links):
/// an answer whose id names another instance is handed to it, one for this instance is
/// resolved here, and one handed over from another instance completes the request it answers.
#[tokio::test]
async fn answers_to_another_instance_s_iqs_are_handed_to_it() {
    let server = FakeXmppServer::start(JID, SECRET).await.unwrap();
    let mut config = config(&server, JID);
    let recorder = std::sync::Arc::new(ForeignRecorder::default());
    config.foreign_answers = Some(recorder.clone());
    let running = start(config, TestHandler::with_feature("f"));
    let mut session = server.next_session(STEP).await.expect("no session");
    wait_state(&running.link.watch_state(), LinkState::Connected).await;
    assert_eq!(running.link.instance_id(), "t1");

    let alice = jid("alice@example.test/phone");
    session.send(Iq::empty_result(jid(JID), "b7.12").with_from(alice.clone()));
    tokio::time::timeout(STEP, async {
        while recorder.0.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("not handed over");
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![("b7".to_owned(), "b7.12".to_owned())]
    );

    // This instance's own request, answered on another instance's link and handed here.
    let link = running.link.clone();
    let asked = tokio::spawn(async move { link.send_iq(user_ping(), STEP).await });
    let request = session.recv_iq(STEP).await.expect("IQ not sent");
    let id = request.id().to_owned();
    assert!(id.starts_with("t1."), "{id}");
    // From someone else than the one asked: refused, as on this link.
    let spoofed = Iq::empty_result(jid(JID), id.clone()).with_from(jid("mallory@example.test/x"));
    assert!(!running.link.resolve_forwarded(spoofed));
    // A request is not an answer.
    assert!(
        !running
            .link
            .resolve_forwarded(user_ping().with_id(id.clone()))
    );
    let answer = Iq::empty_result(jid(JID), id).with_from(alice);
    assert!(running.link.resolve_forwarded(answer));
    assert!(matches!(asked.await.unwrap(), Ok(Iq::Result { .. })));
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
}
