//! Hostile stanzas from a plain account, through real Prosody and real ejabberd: every IQ a
//! user can address to the component, however long its names, values and namespaces, however
//! deep, however many attributes or form fields, is answered with its error while the
//! component link stays up, and both push roles work right after. On ejabberd, a victim's
//! push registration survives an attacker sending them in a loop while the victim's contacts
//! write to them.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::Duration;

use e2e::http::post_push;
use e2e::{COMPONENT, DOMAIN, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{
    self, Element, chat_message, error_condition, stanza_type,
};
use pushgate_testkit::conversations::{
    directed_presence, read_push_registration, read_up_push, read_up_registered, register_push_fcm,
    up_hash, up_register,
};
use pushgate_testkit::fake_fcm::FakeFcm;

/// How often each hostile IQ is sent.
const REPEAT: usize = 100;
/// How long any one awaited event may take before the test fails.
const STEP: Duration = Duration::from_secs(15);
const ANDROID_ID: &str = "92afd7a91cdba9a0";
/// What pushgate logs each time its link comes up.
const LINK_UP: &str = "component link up";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_iqs_through_prosody_leave_the_link_up() {
    hostile_iqs_leave_the_link_up(
        ServerKind::Prosody,
        "hostile_iqs_through_prosody_leave_the_link_up",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_iqs_through_ejabberd_leave_the_link_up() {
    hostile_iqs_leave_the_link_up(
        ServerKind::Ejabberd,
        "hostile_iqs_through_ejabberd_leave_the_link_up",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ejabberd_a_victims_push_survives_an_attacker() {
    let test = "on_ejabberd_a_victims_push_survives_an_attacker";
    let Some(server) =
        XmppServer::start(ServerKind::Ejabberd, test, &["alice", "bob", "mallory"]).await
    else {
        return;
    };
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
    let pushgate = Pushgate::start(options).await;

    // The victim registers and enables push as Conversations does, then the app sleeps.
    let alice = server.login("alice", "phone").await;
    e2e::register_and_enable(&alice, "victim-token", ANDROID_ID).await;
    alice.close().await.unwrap();

    // The attacker sends the case that used to drop the link, in a loop, while a contact
    // writes to the victim: every message still wakes the phone.
    let mallory = server.login("mallory", "laptop").await;
    let bob = server.login("bob", "desktop").await;
    let long_value = long_attribute_value();
    let messages = 20;
    for round in 0..messages {
        for _ in 0..5 {
            let answer = mallory.iq(long_value.clone()).await.unwrap();
            assert_eq!(
                error_condition(&answer).as_deref(),
                Some("policy-violation")
            );
        }
        bob.send(chat_message(&format!("alice@{DOMAIN}"), "are you there?"))
            .await
            .unwrap();
        let woke = e2e::wait_until(STEP, || fcm.accepted_count() > round).await;
        assert!(
            woke.is_some(),
            "message {round} woke nothing\n--- server ---\n{}\n--- pushgate ---\n{}",
            server.log_tail(60),
            pushgate.log()
        );
    }
    assert!(
        fcm.messages().iter().all(|m| m.token == "victim-token"),
        "only the victim's phone is woken"
    );
    let log = server.log();
    assert!(
        !log.contains("disabling push"),
        "ejabberd disabled push:\n{}",
        server.log_tail(60)
    );
    assert_eq!(
        pushgate.log().matches(LINK_UP).count(),
        1,
        "{}",
        pushgate.log()
    );
}

async fn hostile_iqs_leave_the_link_up(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "mallory"]).await else {
        return;
    };
    let pushgate = Pushgate::start(PushgateOptions::new(server.component_port())).await;
    let mallory = server.login("mallory", "laptop").await;

    for (what, hostile) in hostile_iqs() {
        for round in 0..REPEAT {
            let answer = mallory.iq(hostile.clone()).await.unwrap_or_else(|error| {
                panic!(
                    "{kind:?}, {what}: no answer in round {round}: {error}\n--- server ---\n{}\n--- pushgate ---\n{}",
                    server.log_tail(40),
                    pushgate.log()
                )
            });
            assert_eq!(stanza_type(&answer), "error", "{what}");
            assert_eq!(
                answer.attr("from"),
                Some(COMPONENT),
                "{what}: answered by the component"
            );
            assert_eq!(
                error_condition(&answer).as_deref(),
                Some("policy-violation"),
                "{what}: {}",
                String::from(&answer)
            );
        }
        pushgate_testkit::interop::notice(&format!("{kind:?}: {what}: {REPEAT} answered"));
    }

    // One component session throughout, as pushgate and the server both tell.
    let log = pushgate.log();
    assert_eq!(log.matches(LINK_UP).count(), 1, "{log}");
    assert!(!log.contains("component link down"), "{log}");
    assert_eq!(
        server.log_count(component_session_marker(kind)),
        1,
        "{}",
        server.log_tail(40)
    );

    // Right after: a registration and a UnifiedPush delivery work.
    let alice = server.login("alice", "phone").await;
    let answer = alice
        .iq(register_push_fcm(COMPONENT, "fcm-token", ANDROID_ID))
        .await
        .unwrap();
    assert!(
        read_push_registration(&answer, COMPONENT).is_ok(),
        "{}",
        String::from(&answer)
    );
    up_delivery_works(alice, &pushgate).await;
}

/// What the server logs once per component session that authenticated.
fn component_session_marker(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Prosody => "External component successfully authenticated",
        ServerKind::Ejabberd => "Accepted external component",
    }
}

/// Registers an app instance, POSTs to its endpoint and sees the `<push/>` arrive.
async fn up_delivery_works(mut alice: C2sClient, pushgate: &Pushgate) {
    alice.send_presence().await.unwrap();
    alice.send(directed_presence(COMPONENT)).await.unwrap();
    let application = up_hash("hostile-account", "org.example.app");
    let instance = up_hash("hostile-account", "instance-token");
    let answer = alice
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let registered = read_up_registered(&answer, COMPONENT).unwrap();
    let endpoint = registered.endpoint;
    assert!(endpoint.starts_with(&pushgate.public_url()), "{endpoint}");
    let posted = tokio::spawn(async move { post_push(&endpoint, b"still delivered", 60).await });
    let push = alice
        .recv_where(|stanza| read_up_push(stanza).is_some())
        .await
        .expect("no push arrived");
    let request = push.clone();
    alice.send(stanza::iq_result_to(&request)).await.unwrap();
    let response = posted.await.unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
}

fn iq_to_component(payload: Element) -> Element {
    stanza::iq("get", COMPONENT, payload)
}

fn long_attribute_value() -> Element {
    let mut payload = Element::builder("foo", "urn:x").build();
    stanza::set_attr(&mut payload, "a", &"v".repeat(9000));
    iq_to_component(payload)
}

/// The hostile IQs: long names, values and namespaces, deep nesting, 10,000 attributes and a
/// form of 5,000 fields (214 KB).
fn hostile_iqs() -> Vec<(&'static str, Element)> {
    let long = "n".repeat(9000);
    let mut long_attribute_name = Element::builder("foo", "urn:x").build();
    stanza::set_attr(&mut long_attribute_name, &long, "v");
    let mut many_attributes = Element::builder("foo", "urn:x").build();
    for i in 0..10_000 {
        stanza::set_attr(&mut many_attributes, &format!("a{i}"), "v");
    }
    let mut deep = Element::builder("d", "urn:x").build();
    for _ in 0..200 {
        deep = Element::builder("d", "urn:x").append(deep).build();
    }
    vec![
        ("a 9000-byte attribute value", long_attribute_value()),
        (
            "a 9000-byte namespace",
            iq_to_component(Element::builder("foo", format!("urn:{long}")).build()),
        ),
        (
            "a 9000-byte element name",
            iq_to_component(Element::builder(&long, "urn:x").build()),
        ),
        (
            "a 9000-byte attribute name",
            iq_to_component(long_attribute_name),
        ),
        ("nesting 200 deep", iq_to_component(deep)),
        ("10,000 attributes", iq_to_component(many_attributes)),
        ("a form of 5,000 fields", huge_form()),
    ]
}

/// `register-push-fcm` with 5,000 fields: 214 KB, within the servers' own stanza limits.
fn huge_form() -> Element {
    let mut form = stanza::element("x", "jabber:x:data", &[("type", "submit")]);
    for i in 0..5000 {
        let mut field = Element::builder("field", "jabber:x:data")
            .append(
                Element::builder("value", "jabber:x:data")
                    .append("x")
                    .build(),
            )
            .build();
        stanza::set_attr(&mut field, "var", &format!("f{i}"));
        form.append_child(field);
    }
    let mut command = stanza::element(
        "command",
        "http://jabber.org/protocol/commands",
        &[("node", "register-push-fcm"), ("action", "execute")],
    );
    command.append_child(form);
    stanza::iq("set", COMPONENT, command)
}
