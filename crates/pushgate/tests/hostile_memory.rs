//! Memory under hostile forms: the real `pushgate serve` binary, linked to a fake XMPP server
//! that sends 256 `register-push-fcm` commands of 214 KB (5,000 fields) at once, then 256 more
//! that stay within every limit but carry as much as the limits allow (60 fields of 4 KB), so
//! that they are parsed and held while their handlers run. Every one is answered, and the
//! process's peak resident memory stays at most 64 MB.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::Duration;

use e2e::{COMPONENT, COMPONENT_SECRET, Pushgate, PushgateOptions};
use pushgate_testkit::fake_xmpp_server::{FakeSession, FakeXmppServer};

const IN_FLIGHT: usize = 256;
const PEAK_LIMIT_KIB: u64 = 64 * 1024;

fn command(id: &str, fields: &str) -> String {
    format!(
        "<iq type='set' id='{id}' from='mallory@example.test/laptop' to='{COMPONENT}'>\
         <command xmlns='http://jabber.org/protocol/commands' node='register-push-fcm' \
         action='execute'><x xmlns='jabber:x:data' type='submit'>{fields}</x></command></iq>"
    )
}

/// 5,000 fields: 214 KB, refused while it is read.
fn huge_form(id: &str) -> String {
    let fields: String = (0..5000)
        .map(|i| format!("<field var='f{i}'><value>x</value></field>"))
        .collect();
    command(id, &fields)
}

/// Within every default limit, as large as they allow: 60 fields of 4 KB (~245 KB).
fn largest_allowed_form(id: &str) -> String {
    let mut fields = format!(
        "<field var='token'><value>{}</value></field><field var='android-id'><value>{}</value></field>",
        "t".repeat(150),
        "a1b2c3d4e5f60718"
    );
    for i in 0..58 {
        fields.push_str(&format!(
            "<field var='pad{i}'><value>{}</value></field>",
            "p".repeat(4000)
        ));
    }
    command(id, &fields)
}

/// The real binary linked to a fake XMPP server: the server, pushgate, the component's
/// session, and pushgate's peak RSS so far (KiB).
async fn linked_pushgate() -> (FakeXmppServer, Pushgate, FakeSession, u64) {
    let server = FakeXmppServer::start(COMPONENT, COMPONENT_SECRET)
        .await
        .unwrap();
    let pushgate = Pushgate::start(PushgateOptions::new(server.port())).await;
    let session = server
        .next_session(Duration::from_secs(10))
        .await
        .expect("pushgate did not connect");
    let idle = pushgate.peak_rss_kib().expect("peak RSS readable");
    (server, pushgate, session, idle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_forms_in_flight_stay_within_64_mb() {
    let (server, pushgate, mut session, idle) = linked_pushgate().await;

    let mut burst = String::new();
    for i in 0..IN_FLIGHT {
        burst.push_str(&huge_form(&format!("huge{i}")));
    }
    assert!(burst.len() > IN_FLIGHT * 210_000, "{}", burst.len());
    session.send_raw(burst);
    let mut burst = String::new();
    for i in 0..IN_FLIGHT {
        burst.push_str(&largest_allowed_form(&format!("large{i}")));
    }
    session.send_raw(burst);

    let mut conditions = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..2 * IN_FLIGHT {
        let answer = session
            .recv(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("not every command was answered\n{}", pushgate.log()));
        let id = answer.attr("id").unwrap_or_default().to_owned();
        let outcome = match answer.get_child("error", "jabber:component:accept") {
            Some(error) => error
                .children()
                .next()
                .map(|condition| condition.name().to_owned())
                .unwrap_or_default(),
            None => answer.attr("type").unwrap_or_default().to_owned(),
        };
        if id.starts_with("huge") {
            assert_eq!(outcome, "policy-violation", "{id}");
        }
        *conditions
            .entry(format!("{} {outcome}", &id[..4]))
            .or_default() += 1;
    }
    let peak = pushgate.peak_rss_kib().expect("peak RSS readable");
    pushgate_testkit::interop::notice(&format!(
        "peak RSS {:.1} MB (idle {:.1} MB) with {} hostile commands sent at once: {conditions:?}",
        peak as f64 / 1024.0,
        idle as f64 / 1024.0,
        2 * IN_FLIGHT
    ));
    assert!(
        peak <= PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB over {PEAK_LIMIT_KIB} KiB\n{}",
        pushgate.log()
    );
    assert_eq!(server.handshakes(), 1, "the link stayed up");
}

/// One account registering 5,000 UnifiedPush endpoints, and available presence from 20,000
/// distinct JIDs: endpoints are stateless tokens and only owners with kept messages are
/// flushed on presence, so neither leaves anything behind per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_endpoints_and_presences_leave_nothing_per_user() {
    const REGISTRATIONS: usize = 5000;
    const PRESENCES: usize = 20_000;
    const GROWTH_LIMIT_KIB: u64 = 16 * 1024;
    let (_server, pushgate, mut session, idle) = linked_pushgate().await;

    let mut burst = String::new();
    for i in 0..REGISTRATIONS {
        // Distinct 32-byte ids, standard base64 as Conversations sends them.
        let instance = format!("{i:0>43}=");
        burst.push_str(&format!(
            "<iq type='set' id='r{i}' from='mallory@example.test/laptop' to='{COMPONENT}'>\
             <register xmlns='http://gultsch.de/xmpp/drafts/unified-push' \
             application='XrfnJea6xD8qkGQ3qnvggAgd54an0S97lkm+R7adbKA=' instance='{instance}'/></iq>"
        ));
    }
    session.send_raw(burst);
    let mut registered = 0;
    for _ in 0..REGISTRATIONS {
        let answer = session
            .recv(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("a registration was not answered\n{}", pushgate.log()));
        if answer.attr("type") == Some("result") {
            registered += 1;
        } else {
            // A burst past max_concurrent_iqs is asked to wait; anything else is a fault.
            assert!(
                String::from(&answer).contains("resource-constraint"),
                "{}",
                String::from(&answer)
            );
        }
    }
    assert!(registered > REGISTRATIONS / 2, "{registered}");

    let mut burst = String::new();
    for i in 0..PRESENCES {
        burst.push_str(&format!(
            "<presence from='user{i}@example.test/phone' to='{COMPONENT}'/>"
        ));
    }
    session.send_raw(burst);
    // The link answers a ping only after it has read every presence before it.
    session.send_raw(format!(
        "<iq type='get' id='after' from='example.test' to='{COMPONENT}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ));
    let answer = session
        .recv(Duration::from_secs(30))
        .await
        .expect("the ping after the presences was not answered");
    assert_eq!(answer.attr("id"), Some("after"));
    // Let any work the presences started run its course before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = pushgate.peak_rss_kib().expect("peak RSS readable");
    pushgate_testkit::interop::notice(&format!(
        "peak RSS {:.1} MB (idle {:.1} MB) after {REGISTRATIONS} registrations and {PRESENCES} presences",
        peak as f64 / 1024.0,
        idle as f64 / 1024.0,
    ));
    assert!(
        peak.saturating_sub(idle) <= GROWTH_LIMIT_KIB,
        "peak RSS grew by {} KiB\n{}",
        peak.saturating_sub(idle),
        pushgate.log()
    );
}
