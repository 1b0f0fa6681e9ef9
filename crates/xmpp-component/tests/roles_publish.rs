//! The app server role's publishes on the wire: the captured XEP-0357 publishes of Prosody
//! and ejabberd, and every row of the reply table (docs/protocol.md A.2).

#![allow(clippy::unwrap_used)]

mod support;

use pushgate_core::{DeviceHash, WakeOutcome};
use support::JID;
use support::app_server::*;
use support::roles::*;

#[tokio::test]
async fn the_device_hash_is_p2s_and_a_publish_wakes_with_it() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let from = "xiaomia1@jabber.de/Conversations.AbCd";
    let (node, secret) = register(&mut h, from, "tok-x", "92afd7a91cdba9a0").await;
    let expected = "ec164939a8485ee6b7f7871071a11c7bb18aead5";
    assert_eq!(h.store.registrations()[0].device.as_str(), expected);
    let reply = h
        .exchange(&prosody_publish(&node, &secret, "jabber.de"))
        .await;
    assert_empty_result(
        &reply,
        "41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9",
    );
    assert_eq!(reply.attr("to"), Some("jabber.de"));
    assert_eq!(
        h.waker.tokens_and_devices(),
        vec![("tok-x".to_owned(), expected.to_owned())]
    );
    h.stop().await;
}

#[tokio::test]
async fn prosody_and_ejabberd_publishes_wake_the_phone() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let (node, secret) = register(&mut h, ALICE, "FCM-T", "A1").await;
    let device = DeviceHash::compute("alice@example.test", "A1");
    let captures = [
        (
            prosody_publish(&node, &secret, "example.test"),
            "41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9",
        ),
        (
            ejabberd_publish(&node, &secret),
            "rr-1795304241616-4070978284379159298-tGWXfBKzfdWSm9di9q6Ru1Wy4Ns=-32189140",
        ),
        (
            ejabberd_publish_summary(&node, &secret),
            "rr-1795304273846-995200286761437116-kdsE8Lz/Hj+FEMyKC4t8hbAytaE=-32189140",
        ),
    ];
    for (stanza, id) in &captures {
        let reply = h.exchange(stanza).await;
        assert_empty_result(&reply, id);
        assert_eq!(reply.attr("to"), Some("example.test"));
    }
    let calls = h.waker.tokens_and_devices();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|call| *call == ("FCM-T".to_owned(), device.as_str().to_owned()))
    );
    // A user's bare JID may publish too: only its domain is looked up.
    let reply = h
        .exchange(&prosody_publish(&node, &secret, "bob@example.test"))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    h.stop().await;
}

#[tokio::test]
async fn every_row_of_the_publish_table() {
    let mut h = start_roles(RolesOptions::default(), |_| ()).await;
    let (node, secret) = register(&mut h, ALICE, "FCM-T", "A1").await;
    let publish = |from: &str| prosody_publish(&node, &secret, from);
    let no_options = {
        let full = publish("example.test");
        let start = full.find("<publish-options>").unwrap();
        let end = full.find("</publish-options>").unwrap() + "</publish-options>".len();
        format!("{}{}", &full[..start], &full[end..])
    };
    let rows: Vec<(&str, String, (&str, &str))> = vec![
        (
            "resource in from",
            publish("example.test/res"),
            ("forbidden", "auth"),
        ),
        (
            "wrong secret",
            prosody_publish(&node, "AAAAAAAAAAAAAAAAAAAAAAAA", "example.test"),
            ("forbidden", "auth"),
        ),
        ("no publish-options", no_options, ("forbidden", "auth")),
        (
            "unknown node",
            prosody_publish("nonode", &secret, "example.test"),
            ("item-not-found", "cancel"),
        ),
        (
            "other domain",
            publish("other.test"),
            ("item-not-found", "cancel"),
        ),
        (
            "get",
            publish("example.test").replace("type='set'", "type='get'"),
            ("bad-request", "modify"),
        ),
    ];
    for (what, stanza, (condition, type_)) in rows {
        let reply = h.exchange(&stanza).await;
        assert_eq!(
            stanza_error(&reply),
            (condition.to_owned(), type_.to_owned()),
            "{what}"
        );
    }
    assert!(
        h.waker.tokens_and_devices().is_empty(),
        "no push for a refused publish"
    );

    let subscribe = format!(
        "<iq type='set' id='s1' from='example.test' to='{JID}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <subscribe node='{node}' jid='example.test'/></pubsub></iq>"
    );
    let reply = h.exchange(&subscribe).await;
    assert_eq!(
        stanza_error(&reply),
        ("feature-not-implemented".into(), "cancel".into())
    );

    // Transient push-service trouble and a refused message: `wait`, the registration survives.
    for outcome in [
        WakeOutcome::Transient("503".into()),
        WakeOutcome::Rejected("INVALID_ARGUMENT".into()),
    ] {
        h.waker.answer(outcome);
        let reply = h.exchange(&publish("example.test")).await;
        assert_eq!(
            stanza_error(&reply),
            ("recipient-unavailable".into(), "wait".into())
        );
    }
    // The database is down: `wait` as well.
    h.store.set_unavailable(true);
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("internal-server-error".into(), "wait".into())
    );
    h.store.set_unavailable(false);
    // FCM UNREGISTERED: item-not-found, the registration is marked dead, and the next publish
    // is answered without asking FCM again.
    h.waker.answer(WakeOutcome::TokenDead);
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("item-not-found".into(), "cancel".into())
    );
    assert!(h.store.registrations()[0].dead_since.is_some());
    let asked = h.waker.tokens_and_devices().len();
    let reply = h.exchange(&publish("example.test")).await;
    assert_eq!(
        stanza_error(&reply),
        ("item-not-found".into(), "cancel".into())
    );
    assert_eq!(h.waker.tokens_and_devices().len(), asked);
    h.stop().await;
}

#[tokio::test]
async fn a_burst_of_publishes_is_answered() {
    let mut h = start_roles(RolesOptions::default(), |c| {
        c.max_concurrent_iqs = 4096;
        c.outbound_queue = 4096;
    })
    .await;
    let (node, secret) = register(&mut h, ALICE, "FCM-T", "A1").await;
    const N: usize = 2000;
    let one = ejabberd_publish(&node, &secret);
    let mut burst = String::with_capacity(N * (one.len() + 8));
    for i in 0..N {
        burst.push_str(&one.replacen("id='rr-", &format!("id='{i}-rr-"), 1));
    }
    let started = std::time::Instant::now();
    h.session.send_raw(burst);
    let mut answered = std::collections::HashSet::new();
    for _ in 0..N {
        let reply = h.session.recv(support::STEP).await.expect("reply missing");
        assert_eq!(
            reply.attr("type"),
            Some("result"),
            "{}",
            String::from(&reply)
        );
        answered.insert(reply.attr("id").unwrap().to_owned());
    }
    let elapsed = started.elapsed();
    assert_eq!(answered.len(), N);
    assert_eq!(h.waker.tokens_and_devices().len(), N);
    eprintln!(
        "{N} publishes answered in {elapsed:?} ({:.1} µs each, fake server included)",
        elapsed.as_secs_f64() * 1e6 / N as f64
    );
    h.stop().await;
}
