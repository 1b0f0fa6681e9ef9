//! UnifiedPush store and forward on every backend.

use pushgate_core::{
    MessageStore as _, MessageStoreLimits, NewStoredMessage, OwnerKey, StoreError, StoreFullScope,
};

use crate::support::{TestDb, on_every_backend};

const ROOMY: MessageStoreLimits = MessageStoreLimits {
    max_per_owner: 100,
    max_total: 1_000,
};

fn message(owner: &str, instance: &str, topic: Option<&str>, body: &[u8]) -> NewStoredMessage {
    NewStoredMessage {
        owner: OwnerKey::of_jid(owner),
        endpoint_token: format!("v2.local.{owner}.{instance}"),
        application: "bTsmTcCxBSUtkFqj4vhVEGM5vJIfDBtVwlRIq9zB8bU=".to_owned(),
        instance: instance.to_owned(),
        topic: topic.map(str::to_owned),
        urgency: None,
        body: body.to_vec(),
        received_at: 1_000,
        expires_at: 10_000,
    }
}

fn owner(jid: &str) -> OwnerKey {
    OwnerKey::of_jid(jid)
}

/// Messages come back whole (binary bodies, optional fields) and in arrival order, each owner
/// seeing only their own, at most `limit` of them.
async fn messages_come_back_in_order(db: TestDb) {
    let store = db.connect().await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let first = NewStoredMessage {
        urgency: Some("high".to_owned()),
        topic: Some("news".to_owned()),
        ..message("alice@example.test/a", "i1", None, &binary)
    };
    let second = message("alice@example.test/a", "i2", None, b"");
    let elsewhere = message("alice@example.test/b", "i1", None, b"other resource");
    let first_id = store.store_message(first.clone(), ROOMY).await.unwrap();
    let other_id = store.store_message(elsewhere.clone(), ROOMY).await.unwrap();
    let second_id = store.store_message(second.clone(), ROOMY).await.unwrap();
    assert!(first_id < other_id && other_id < second_id);

    let listed = store
        .messages_for_owner(&owner("alice@example.test/a"), 1_000, 10)
        .await
        .unwrap();
    let ids: Vec<i64> = listed.iter().map(|m| m.id).collect();
    assert_eq!(ids, [first_id, second_id]);
    assert_eq!(listed[0].message, first);
    assert_eq!(listed[1].message, second);
    let limited = store
        .messages_for_owner(&owner("alice@example.test/a"), 1_000, 1)
        .await
        .unwrap();
    assert_eq!(limited.iter().map(|m| m.id).collect::<Vec<_>>(), [first_id]);
    let others = store
        .messages_for_owner(&owner("alice@example.test/b"), 1_000, 10)
        .await
        .unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].message, elsewhere);
}

/// The per-owner cap refuses the owner's next message but not another owner's; the total cap
/// refuses everyone; refusals store nothing.
async fn caps_refuse_past_the_limits(db: TestDb) {
    let store = db.connect().await;
    let limits = MessageStoreLimits {
        max_per_owner: 2,
        max_total: 3,
    };
    for body in [b"1", b"2"] {
        store
            .store_message(message("a@x/r", "i", None, body), limits)
            .await
            .unwrap();
    }
    let refused = store
        .store_message(message("a@x/r", "i", None, b"3"), limits)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Full(StoreFullScope::Owner))),
        "{refused:?}"
    );
    store
        .store_message(message("b@x/r", "i", None, b"1"), limits)
        .await
        .unwrap();
    let refused = store
        .store_message(message("c@x/r", "i", None, b"1"), limits)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Full(StoreFullScope::Total))),
        "{refused:?}"
    );
    assert_eq!(store.messages_after(0, 1_000, 100).await.unwrap().len(), 3);

    // Expired messages no longer count.
    let later = NewStoredMessage {
        received_at: 10_000,
        expires_at: 20_000,
        ..message("a@x/r", "i", None, b"4")
    };
    store.store_message(later, limits).await.unwrap();
}

/// A message with a topic replaces the owner's stored message with the same application,
/// instance and topic, takes a later id, and does not count twice against a full cap.
async fn topic_replaces_the_stored_message(db: TestDb) {
    let store = db.connect().await;
    let limits = MessageStoreLimits {
        max_per_owner: 2,
        max_total: 10,
    };
    let old = store
        .store_message(message("a@x/r", "i", Some("t"), b"old"), limits)
        .await
        .unwrap();
    let plain = store
        .store_message(message("a@x/r", "i", None, b"plain"), limits)
        .await
        .unwrap();
    let newer = store
        .store_message(message("a@x/r", "i", Some("t"), b"new"), limits)
        .await
        .unwrap();
    assert!(newer > plain);
    let listed = store
        .messages_for_owner(&owner("a@x/r"), 1_000, 10)
        .await
        .unwrap();
    let bodies: Vec<(i64, &[u8])> = listed
        .iter()
        .map(|m| (m.id, m.message.body.as_slice()))
        .collect();
    assert_eq!(bodies, [(plain, &b"plain"[..]), (newer, &b"new"[..])]);
    assert!(
        !store.delete_message(old).await.unwrap(),
        "the old message is gone"
    );

    // Same topic elsewhere (other instance, other owner) replaces nothing.
    store
        .store_message(message("b@x/r", "i", Some("t"), b"b"), limits)
        .await
        .unwrap();
    let refused = store
        .store_message(message("a@x/r", "j", Some("t"), b"j"), limits)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Full(StoreFullScope::Owner))),
        "{refused:?}"
    );
    assert_eq!(
        store
            .messages_for_owner(&owner("a@x/r"), 1_000, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .messages_for_owner(&owner("b@x/r"), 1_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Expired messages are hidden from readers and deleted by the purge, which counts them.
async fn expired_messages_are_hidden_and_purged(db: TestDb) {
    let store = db.connect().await;
    let short = NewStoredMessage {
        expires_at: 2_000,
        ..message("a@x/r", "i", None, b"short")
    };
    let long = message("a@x/r", "i", None, b"long");
    store.store_message(short, ROOMY).await.unwrap();
    let long_id = store.store_message(long, ROOMY).await.unwrap();
    assert_eq!(
        store
            .messages_for_owner(&owner("a@x/r"), 1_999, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let at_expiry = store
        .messages_for_owner(&owner("a@x/r"), 2_000, 10)
        .await
        .unwrap();
    assert_eq!(
        at_expiry.iter().map(|m| m.id).collect::<Vec<_>>(),
        [long_id]
    );
    assert_eq!(store.messages_after(0, 2_000, 10).await.unwrap().len(), 1);
    assert_eq!(store.purge_expired_messages(1_999).await.unwrap(), 0);
    assert_eq!(store.purge_expired_messages(2_000).await.unwrap(), 1);
    assert_eq!(
        store
            .messages_for_owner(&owner("a@x/r"), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.purge_expired_messages(i64::MAX).await.unwrap(), 1);
    assert!(store.messages_after(0, 0, 10).await.unwrap().is_empty());
}

/// Paging by id walks every owner's unexpired messages once, in order.
async fn messages_after_pages_through_everything(db: TestDb) {
    let store = db.connect().await;
    let mut stored = Vec::new();
    for i in 0..7 {
        let jid = format!("user{}@x/r", i % 3);
        stored.push(
            store
                .store_message(message(&jid, "i", None, b"m"), ROOMY)
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages_after(after, 1_000, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page.iter().map(|m| m.id));
    }
    assert_eq!(seen, stored);
}

/// Deleting by id says whether the message existed; deleting an endpoint's messages removes
/// exactly that owner's application and instance.
async fn deletes_remove_exactly_their_messages(db: TestDb) {
    let store = db.connect().await;
    let id = store
        .store_message(message("a@x/r", "i", None, b"1"), ROOMY)
        .await
        .unwrap();
    assert!(store.delete_message(id).await.unwrap());
    assert!(!store.delete_message(id).await.unwrap());
    assert!(!store.delete_message(-1).await.unwrap());

    for _ in 0..3 {
        store
            .store_message(message("a@x/r", "i", None, b"gone"), ROOMY)
            .await
            .unwrap();
    }
    let kept = [
        store
            .store_message(message("a@x/r", "j", None, b"other instance"), ROOMY)
            .await
            .unwrap(),
        store
            .store_message(message("b@x/r", "i", None, b"other owner"), ROOMY)
            .await
            .unwrap(),
        store
            .store_message(
                NewStoredMessage {
                    application: "other".to_owned(),
                    ..message("a@x/r", "i", None, b"")
                },
                ROOMY,
            )
            .await
            .unwrap(),
    ];
    let application = message("a@x/r", "i", None, b"").application;
    assert_eq!(
        store
            .delete_endpoint_messages(&owner("a@x/r"), &application, "i")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .delete_endpoint_messages(&owner("a@x/r"), &application, "i")
            .await
            .unwrap(),
        0
    );
    let left: Vec<i64> = store
        .messages_after(0, 1_000, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, kept);
}

/// Concurrent stores all succeed with distinct ids (SQLite takes the write lock up front, so
/// no writer fails on a stale read).
async fn concurrent_stores_all_land(db: TestDb) {
    let store = db.connect().await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let message = message(&format!("u{}@x/r", i % 4), "i", None, b"m");
            tokio::spawn(async move { store.store_message(message, ROOMY).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").expect("store"));
    }
    ids.sort_unstable();
    let listed: Vec<i64> = store
        .messages_after(0, 1_000, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, ids);
}

/// The total cap counts what is stored after every kind of deletion: by id, by endpoint, by
/// topic replacement and by expiry; it refuses at the same number each time.
async fn total_cap_follows_every_deletion(db: TestDb) {
    let store = db.connect().await;
    let limits = MessageStoreLimits {
        max_per_owner: 10,
        max_total: 4,
    };
    let store_one = |message: NewStoredMessage| {
        let store = store.clone();
        async move { store.store_message(message, limits).await }
    };
    let is_total = |outcome: &Result<i64, StoreError>| {
        matches!(outcome, Err(StoreError::Full(StoreFullScope::Total)))
    };
    let first = store_one(message("a@x/r", "i", None, b"a")).await.unwrap();
    store_one(message("b@x/r", "i", None, b"b")).await.unwrap();
    store_one(message("c@x/r", "i", Some("t"), b"c"))
        .await
        .unwrap();
    let short = NewStoredMessage {
        expires_at: 2_000,
        ..message("d@x/r", "i", None, b"d")
    };
    store_one(short).await.unwrap();
    let refused = store_one(message("e@x/r", "i", None, b"e")).await;
    assert!(is_total(&refused), "{refused:?}");

    // A replacement takes its predecessor's place.
    store_one(message("c@x/r", "i", Some("t"), b"c2"))
        .await
        .unwrap();
    let refused = store_one(message("e@x/r", "i", None, b"e")).await;
    assert!(is_total(&refused), "{refused:?}");

    // Deleted by id: room for exactly one.
    assert!(store.delete_message(first).await.unwrap());
    store_one(message("e@x/r", "i", None, b"e")).await.unwrap();
    let refused = store_one(message("f@x/r", "i", None, b"f")).await;
    assert!(is_total(&refused), "{refused:?}");

    // Deleted by endpoint: room for exactly one.
    let application = message("b@x/r", "i", None, b"").application;
    let removed = store
        .delete_endpoint_messages(&owner("b@x/r"), &application, "i")
        .await
        .unwrap();
    assert_eq!(removed, 1);
    store_one(message("f@x/r", "i", None, b"f")).await.unwrap();
    let refused = store_one(message("g@x/r", "i", None, b"g")).await;
    assert!(is_total(&refused), "{refused:?}");

    // Expired: no longer counted, whether purged yet or not.
    let later = |jid: &str| NewStoredMessage {
        received_at: 2_000,
        ..message(jid, "i", None, b"later")
    };
    store_one(later("g@x/r")).await.unwrap();
    let refused = store_one(later("h@x/r")).await;
    assert!(is_total(&refused), "{refused:?}");
    assert_eq!(store.purge_expired_messages(2_000).await.unwrap(), 0);
    assert_eq!(store.messages_after(0, 2_000, 100).await.unwrap().len(), 4);

    // Purged: room again.
    let last = NewStoredMessage {
        received_at: 10_000,
        expires_at: 20_000,
        ..message("h@x/r", "i", None, b"h")
    };
    assert_eq!(store.purge_expired_messages(10_000).await.unwrap(), 4);
    store_one(last).await.unwrap();
    assert_eq!(store.messages_after(0, 10_000, 100).await.unwrap().len(), 1);
}

/// The per-owner cap is exact through every way a message leaves: a replacement, a delivery,
/// a revoked endpoint, expiry (purged or not), and for a store opened again.
async fn owner_cap_follows_every_deletion(db: TestDb) {
    let store = db.connect().await;
    let limits = MessageStoreLimits {
        max_per_owner: 3,
        max_total: 1_000,
    };
    let store_one = |message: NewStoredMessage| {
        let store = store.clone();
        async move { store.store_message(message, limits).await }
    };
    let is_owner = |outcome: &Result<i64, StoreError>| {
        matches!(outcome, Err(StoreError::Full(StoreFullScope::Owner)))
    };
    let first = store_one(message("a@x/r", "i", None, b"1")).await.unwrap();
    store_one(message("a@x/r", "j", None, b"2")).await.unwrap();
    store_one(message("a@x/r", "i", Some("t"), b"3"))
        .await
        .unwrap();
    let refused = store_one(message("a@x/r", "i", None, b"4")).await;
    assert!(is_owner(&refused), "{refused:?}");
    // Another owner is not affected.
    store_one(message("b@x/r", "i", None, b"b")).await.unwrap();

    // A replacement takes its predecessor's place, at the cap too.
    store_one(message("a@x/r", "i", Some("t"), b"3b"))
        .await
        .unwrap();
    let refused = store_one(message("a@x/r", "i", None, b"4")).await;
    assert!(is_owner(&refused), "{refused:?}");

    // Delivered: room for exactly one.
    assert!(store.delete_message(first).await.unwrap());
    store_one(message("a@x/r", "i", None, b"4")).await.unwrap();
    let refused = store_one(message("a@x/r", "i", None, b"5")).await;
    assert!(is_owner(&refused), "{refused:?}");

    // Revoked endpoint `j`: room for exactly one.
    let application = message("a@x/r", "j", None, b"").application;
    let removed = store
        .delete_endpoint_messages(&owner("a@x/r"), &application, "j")
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let short = NewStoredMessage {
        expires_at: 2_000,
        ..message("a@x/r", "i", None, b"short")
    };
    store_one(short).await.unwrap();
    let refused = store_one(message("a@x/r", "i", None, b"6")).await;
    assert!(is_owner(&refused), "{refused:?}");

    // Expired but not purged: no longer counted.
    let later = |body: &'static [u8]| NewStoredMessage {
        received_at: 2_000,
        ..message("a@x/r", "i", None, body)
    };
    store_one(later(b"7")).await.unwrap();
    let refused = store_one(later(b"8")).await;
    assert!(is_owner(&refused), "{refused:?}");

    // A store opened again (another instance, a restart) sees the same counts.
    let again = db.connect().await;
    let refused = again.store_message(later(b"8"), limits).await;
    assert!(is_owner(&refused), "{refused:?}");

    // Purged: the owner's expired message and all of it once everything expired.
    assert_eq!(store.purge_expired_messages(2_000).await.unwrap(), 1);
    let refused = store_one(later(b"8")).await;
    assert!(is_owner(&refused), "{refused:?}");
    assert_eq!(store.purge_expired_messages(10_000).await.unwrap(), 4);
    for body in [b"9", b"a", b"b"] {
        let fresh = NewStoredMessage {
            received_at: 10_000,
            expires_at: 20_000,
            ..message("a@x/r", "i", None, body)
        };
        store_one(fresh).await.unwrap();
    }
    let refused = store_one(NewStoredMessage {
        received_at: 10_000,
        expires_at: 20_000,
        ..message("a@x/r", "i", None, b"c")
    })
    .await;
    assert!(is_owner(&refused), "{refused:?}");
}

/// Writers storing at the same instant never pass the total cap together.
async fn concurrent_stores_stop_at_the_total_cap(db: TestDb) {
    let store = db.connect().await;
    let limits = MessageStoreLimits {
        max_per_owner: 10,
        max_total: 5,
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let message = message(&format!("u{i}@x/r"), "i", None, b"m");
            tokio::spawn(async move { store.store_message(message, limits).await })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => stored += 1,
            Err(StoreError::Full(StoreFullScope::Total)) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((stored, refused), (5, 7));
    assert_eq!(store.messages_after(0, 1_000, 100).await.unwrap().len(), 5);
}

/// Hundreds of stores at once share transactions: each is answered with the id of its own
/// message (read back by id with its own body, topic and owner), the per-owner and total caps
/// refuse exactly past their numbers, and a topic in the same burst replaces the older message.
async fn a_burst_of_stores_is_written_together_and_each_gets_its_own_id(db: TestDb) {
    let store = db.connect().await;
    // 10 owners × 40 at once, 30 allowed per owner: exactly 100 refused by the owner cap.
    let per_owner = MessageStoreLimits {
        max_per_owner: 30,
        max_total: 1_000,
    };
    // Then 10 more owners × 10 at once with room for 50 in all: exactly 50 refused by it.
    let total = MessageStoreLimits {
        max_per_owner: 30,
        max_total: 350,
    };
    let burst = |first: usize, owners: usize, count: usize, limits: MessageStoreLimits| {
        let tasks: Vec<_> = (first..first + count)
            .map(|i| {
                let store = store.clone();
                let body = format!("body {i:03}").into_bytes();
                let message = message(&format!("u{}@x/r", i % owners + first), "i", None, &body);
                tokio::spawn(async move { (body, store.store_message(message, limits).await) })
            })
            .collect::<Vec<_>>();
        async move {
            let (mut kept, mut owner_full, mut total_full) = (Vec::new(), 0, 0);
            for task in tasks {
                match task.await.expect("task") {
                    (body, Ok(id)) => kept.push((id, body)),
                    (_, Err(StoreError::Full(StoreFullScope::Owner))) => owner_full += 1,
                    (_, Err(StoreError::Full(StoreFullScope::Total))) => total_full += 1,
                    (_, Err(other)) => panic!("{other}"),
                }
            }
            (kept, owner_full, total_full)
        }
    };
    let (mut kept, owner_full, total_full) = burst(0, 10, 400, per_owner).await;
    assert_eq!((kept.len(), owner_full, total_full), (300, 100, 0));
    let (more, owner_full, total_full) = burst(1000, 10, 100, total).await;
    assert_eq!((more.len(), owner_full, total_full), (50, 0, 50));
    kept.extend(more);
    let mut listed = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages_after(after, 1_000, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        listed.extend(page.into_iter().map(|m| (m.id, m.message.body)));
    }
    kept.sort();
    assert_eq!(listed, kept, "each id names the message it was given for");
    for owner_index in 0..10 {
        let stored = store
            .messages_for_owner(&owner(&format!("u{owner_index}@x/r")), 1_000, 100)
            .await
            .unwrap();
        assert!(stored.len() <= 30, "{}", stored.len());
        let prefix = format!("u{owner_index}@x/r");
        assert!(
            stored
                .iter()
                .all(|m| m.message.endpoint_token.contains(&prefix))
        );
    }

    // A burst with topics: each message replaces the one before it with the same topic.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let message = message("topics@x/r", "t", Some("news"), format!("n{i}").as_bytes());
            tokio::spawn(async move { store.store_message(message, ROOMY).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("stored");
    }
    let news = store
        .messages_for_owner(&owner("topics@x/r"), 1_000, 100)
        .await
        .unwrap();
    assert_eq!(news.len(), 1, "one message per topic");
}

on_every_backend! {
    messages_come_back_in_order => crate::messages::messages_come_back_in_order,
    caps_refuse_past_the_limits => crate::messages::caps_refuse_past_the_limits,
    topic_replaces_the_stored_message => crate::messages::topic_replaces_the_stored_message,
    expired_messages_are_hidden_and_purged => crate::messages::expired_messages_are_hidden_and_purged,
    messages_after_pages_through_everything => crate::messages::messages_after_pages_through_everything,
    deletes_remove_exactly_their_messages => crate::messages::deletes_remove_exactly_their_messages,
    concurrent_stores_all_land => crate::messages::concurrent_stores_all_land,
    total_cap_follows_every_deletion => crate::messages::total_cap_follows_every_deletion,
    owner_cap_follows_every_deletion => crate::messages::owner_cap_follows_every_deletion,
    concurrent_stores_stop_at_the_total_cap => crate::messages::concurrent_stores_stop_at_the_total_cap,
    a_burst_of_stores_is_written_together_and_each_gets_its_own_id => crate::messages::a_burst_of_stores_is_written_together_and_each_gets_its_own_id,
}
