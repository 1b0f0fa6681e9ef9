use std::collections::HashSet;
use std::time::Duration;

use super::*;

fn event(at: i64) -> TraceEvent {
    TraceEvent {
        at,
        hop: Hop::PublishReceived,
        outcome: TraceOutcome::Ok,
        latency_us: 0,
        application: None,
        trace_id: TraceId::from(7),
    }
}

fn times(trace: &DeliveryTrace, key: &TraceKey) -> Vec<i64> {
    trace.events(key).iter().map(|event| event.at).collect()
}

#[test]
fn a_ring_keeps_the_newest_32_oldest_first() {
    let trace = DeliveryTrace::new(4);
    let key = trace.node_key("node-a");
    for at in 0..100 {
        trace.record(&key, event(at));
        let kept = times(&trace, &key);
        let first = (at + 1 - 32).max(0);
        assert_eq!(kept, (first..=at).collect::<Vec<_>>());
    }
}

#[test]
fn a_ring_grows_lazily_and_never_past_32() {
    let trace = DeliveryTrace::new(4);
    let key = trace.node_key("node-a");
    let capacity = |trace: &DeliveryTrace| {
        trace
            .lock()
            .peek(&key)
            .map_or(0, |ring| ring.events.capacity())
    };
    trace.record(&key, event(0));
    assert_eq!(capacity(&trace), 1, "one event takes room for one");
    trace.record(&key, event(1));
    assert_eq!(capacity(&trace), 2, "two take room for two");
    for at in 2..1000 {
        trace.record(&key, event(at));
        let len = usize::try_from(at + 1)
            .unwrap_or(usize::MAX)
            .min(EVENTS_PER_KEY);
        assert!(
            capacity(&trace) < 2 * len,
            "room for at most twice the events kept"
        );
        assert!(capacity(&trace) <= EVENTS_PER_KEY);
    }
}

#[test]
fn the_least_recently_used_key_is_evicted_not_a_recently_touched_one() {
    let trace = DeliveryTrace::new(3);
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|node| trace.node_key(node));
    trace.record(&a, event(1));
    trace.record(&b, event(2));
    trace.record(&c, event(3));
    // Touching `a` makes `b` the least recently used.
    trace.record(&a, event(4));
    trace.record(&d, event(5));
    assert_eq!(trace.len(), 3);
    assert_eq!(times(&trace, &a), [1, 4]);
    assert!(trace.events(&b).is_empty(), "b was evicted");
    assert_eq!(times(&trace, &c), [3]);
    assert_eq!(times(&trace, &d), [5]);
}

#[test]
fn looking_at_a_key_does_not_keep_it() {
    let trace = DeliveryTrace::new(2);
    let [a, b, c] = ["a", "b", "c"].map(|node| trace.node_key(node));
    trace.record(&a, event(1));
    trace.record(&b, event(2));
    assert_eq!(times(&trace, &a), [1]);
    trace.record(&c, event(3));
    assert!(
        trace.events(&a).is_empty(),
        "a is still the least recently used"
    );
    assert_eq!(times(&trace, &b), [2]);
}

#[test]
fn the_number_of_keys_never_exceeds_max_keys() {
    let trace = DeliveryTrace::new(50);
    assert_eq!(trace.max_keys(), 50);
    for n in 0..1_000 {
        let key = trace.account_key(&format!("user{n}@example.org"));
        trace.record(&key, event(n));
        assert!(trace.len() <= 50);
        assert_eq!(times(&trace, &key), [n], "the newest key is kept");
    }
    assert_eq!(trace.len(), 50);
}

#[test]
fn node_and_account_keys_never_collide_for_the_same_text() {
    let trace = DeliveryTrace::new(8);
    for text in ["alice@example.org", "node", "", "account\0node", "node\0x"] {
        assert_ne!(trace.node_key(text), trace.account_key(text), "{text:?}");
    }
    // The prefix is not just glued on: "account\0" + x is not "node\0" + y for any split.
    assert_ne!(trace.node_key("account\0x"), trace.account_key("x"));
}

#[test]
fn account_keys_ignore_ascii_case_and_the_resource() {
    let trace = DeliveryTrace::new(8);
    let bare = trace.account_key("alice@example.org");
    assert_eq!(trace.account_key("Alice@Example.ORG"), bare);
    assert_eq!(trace.account_key("alice@example.org/phone"), bare);
    assert_eq!(
        trace.account_key("ALICE@example.org/Phone/with/slashes"),
        bare
    );
    assert_ne!(trace.account_key("bob@example.org"), bare);
    // Longer than the lower-casing buffer, so the chunks are fed in order.
    let long = format!("{}@example.org", "Ab".repeat(100));
    assert_eq!(
        trace.account_key(&long),
        trace.account_key(&long.to_ascii_lowercase())
    );
    assert_ne!(trace.account_key(&long), bare);
    // Nodes are case-sensitive.
    assert_ne!(trace.node_key("Node"), trace.node_key("node"));
}

#[test]
fn each_trace_has_its_own_key() {
    let first = DeliveryTrace::new(8);
    let second = DeliveryTrace::new(8);
    assert_ne!(
        first.account_key("alice@example.org"),
        second.account_key("alice@example.org")
    );
    assert_ne!(first.node_key("node-a"), second.node_key("node-a"));
}

#[test]
fn nothing_printed_names_a_jid_or_a_node() {
    let trace = DeliveryTrace::new(16);
    let jids = ["alice@example.org", "alice@example.org/phone"];
    let node = "vyb1Kq3MxRz0node";
    for (n, jid) in jids.iter().enumerate() {
        let mut step = event(i64::try_from(n).unwrap_or_default());
        step.application = Some(AppTag::of("im.conversations.alice"));
        trace.record(&trace.account_key(jid), step);
    }
    trace.record(&trace.node_key(node), event(9));
    let printed = [
        format!("{trace:?}"),
        format!("{:?}", *trace.lock()),
        format!("{:?}", trace.events(&trace.account_key(jids[0]))),
        format!("{:?}", trace.events(&trace.node_key(node))),
        format!("{:?}", trace.mac_key),
    ];
    for text in &printed {
        for secret in [
            "alice",
            "example",
            "org",
            "phone",
            "conversations",
            node,
            "vyb1",
        ] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
    assert!(
        printed[1].contains("TraceKey("),
        "the map itself was printed"
    );
    assert_eq!(printed[4], "MacKey(…)");
}

#[test]
fn a_trace_id_is_8_hex_digits_and_parses_back() {
    for raw in [0, 1, 0xdead_beef, u32::MAX] {
        let id = TraceId::from(raw);
        let text = id.to_string();
        assert_eq!(text.len(), 8);
        assert!(text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(text.parse::<TraceId>(), Ok(id));
    }
    assert_eq!(TraceId::from(0xab).to_string(), "000000ab");
    assert_eq!("DEADBEEF".parse(), Ok(TraceId::from(0xdead_beef)));
    for bad in [
        "",
        "1234567",
        "123456789",
        "+1234567",
        "-1234567",
        "1234567g",
        " 1234567",
    ] {
        assert_eq!(
            bad.parse::<TraceId>(),
            Err(TraceIdError::NotEightHexDigits),
            "{bad:?}"
        );
    }
}

#[test]
fn trace_ids_do_not_repeat() {
    let ids: HashSet<TraceId> = (0..100_000).map(|_| TraceId::new()).collect();
    assert_eq!(ids.len(), 100_000);
}

#[test]
fn a_disabled_trace_keeps_nothing() {
    let trace = DeliveryTrace::new(0);
    let key = trace.node_key("node-a");
    trace.record(&key, event(1));
    assert!(trace.events(&key).is_empty());
    assert_eq!(trace.len(), 0);
    assert!(trace.is_empty());
    assert_eq!(trace.max_keys(), 0);
}

#[test]
fn an_event_is_24_bytes() {
    assert_eq!(std::mem::size_of::<TraceEvent>(), 24);
}

#[test]
fn events_serialize_with_names_and_hex_ids() {
    let step = TraceEvent {
        at: 1_700_000_000_000,
        hop: Hop::FlushedOnLinkUp,
        outcome: TraceOutcome::DeadToken,
        latency_us: 1_500,
        application: Some(AppTag::of("app")),
        trace_id: TraceId::from(0x0102_0304),
    };
    let json = serde_json::to_value(step).unwrap_or_default();
    assert_eq!(json["hop"], "flushed_on_link_up");
    assert_eq!(json["outcome"], "dead_token");
    assert_eq!(json["trace_id"], "01020304");
    assert_eq!(json["latency_us"], 1_500);
    let app = AppTag::of("app").to_string();
    assert_eq!(app.len(), 8);
    assert_eq!(json["application"], app.as_str());
    let none = TraceEvent {
        application: None,
        ..step
    };
    assert!(serde_json::to_value(none).unwrap_or_default()["application"].is_null());
}

#[test]
fn an_app_tag_is_the_start_of_sha256() {
    // SHA-256("abc") = ba7816bf 8f01cfea…
    assert_eq!(AppTag::of("abc").to_string(), "ba7816bf");
}

#[test]
fn latency_saturates() {
    assert_eq!(
        TraceEvent::saturating_micros(Duration::from_millis(3)),
        3_000
    );
    assert_eq!(
        TraceEvent::saturating_micros(Duration::from_secs(10_000)),
        u32::MAX
    );
}

#[test]
fn names_are_snake_case() {
    assert_eq!(Hop::PublishReceived.as_str(), "publish_received");
    assert_eq!(Hop::UpstreamAnswered.as_str(), "upstream_answered");
    assert_eq!(TraceOutcome::NotDelivered.as_str(), "not_delivered");
    assert_eq!(TraceOutcome::Ok.as_str(), "ok");
}

#[test]
fn latencies_read_well() {
    assert_eq!(latency_text(0), "-");
    assert_eq!(latency_text(1_234), "1.23 ms");
    assert_eq!(latency_text(123_456), "123 ms");
    assert_eq!(latency_text(42_000_000), "42 s");
    assert_eq!(latency_text(u32::MAX), "> 71 min");
}
