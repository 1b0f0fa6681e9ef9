//! XEP-0357 registrations on every backend.

use pushgate_core::{
    AccountJid, DeviceHash, Node, PushService, Registration, RegistrationRequest,
    RegistrationStore as _, Secret, Store, StoreError,
};

use crate::support::{TestDb, on_every_backend};

fn request(device: &DeviceHash, token: &str, now: i64) -> RegistrationRequest {
    RegistrationRequest {
        service: PushService::Fcm,
        device: device.clone(),
        domain: "example.test".to_owned(),
        account: AccountJid::new("alice@example.test"),
        max_devices_per_account: 32,
        token: token.to_owned(),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now,
    }
}

fn device(n: u32) -> DeviceHash {
    DeviceHash::compute("alice@example.test", &format!("{n:016x}"))
}

async fn register(store: &impl Store, request: RegistrationRequest) -> Registration {
    store.register_device(request).await.expect("register")
}

/// A new device gets the fresh node and secret; registering again keeps them, takes the new
/// token and domain, moves `updated_at`, keeps `created_at` and clears `dead_since`.
async fn re_registration_keeps_node_and_secret(db: TestDb) {
    let store = db.connect().await;
    let alice = device(1);
    let first_request = request(&alice, "token-1", 1_000);
    let first = register(&store, first_request.clone()).await;
    assert_eq!(first.node, first_request.fresh_node);
    assert_eq!(first.secret, first_request.fresh_secret);
    assert_eq!(first.token, "token-1");
    assert_eq!(
        (first.created_at, first.updated_at, first.dead_since),
        (1_000, 1_000, None)
    );

    assert!(
        store
            .mark_token_dead(PushService::Fcm, &alice, "token-1", 1_500)
            .await
            .unwrap()
    );
    let again = RegistrationRequest {
        domain: "other.example.test".to_owned(),
        ..request(&alice, "token-2", 2_000)
    };
    let second = register(&store, again).await;
    assert_eq!(second.node, first.node);
    assert_eq!(second.secret, first.secret);
    assert_eq!(second.token, "token-2");
    assert_eq!(second.domain, "other.example.test");
    assert_eq!(
        (second.created_at, second.updated_at, second.dead_since),
        (1_000, 2_000, None)
    );

    let found = store
        .find_registration("other.example.test", first.node.as_str())
        .await
        .unwrap();
    assert_eq!(found, Some(second));
    assert_eq!(
        store
            .find_registration("example.test", first.node.as_str())
            .await
            .unwrap(),
        None
    );
}

/// Registrations of one new device racing each other all end on the same node and secret,
/// and one row.
async fn concurrent_registrations_agree(db: TestDb) {
    let store = db.connect().await;
    let bob = device(2);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let request = request(&bob, &format!("token-{i}"), 1_000 + i);
            tokio::spawn(async move { store.register_device(request).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("register"));
    }
    for result in &results {
        assert_eq!(result.node, results[0].node);
        assert_eq!(result.secret, results[0].secret);
    }
    let stored = store
        .find_registration("example.test", results[0].node.as_str())
        .await
        .unwrap();
    assert_eq!(stored.map(|r| r.secret), Some(results[0].secret.clone()));
    assert!(
        store
            .unregister_device(PushService::Fcm, &bob)
            .await
            .unwrap()
    );
    assert!(
        !store
            .unregister_device(PushService::Fcm, &bob)
            .await
            .unwrap(),
        "a second row"
    );
}

/// Unregistering says whether there was something to remove, per service.
async fn unregister_reports_whether_a_row_existed(db: TestDb) {
    let store = db.connect().await;
    let carol = device(3);
    let fcm = register(&store, request(&carol, "t", 1)).await;
    let apns = register(
        &store,
        RegistrationRequest {
            service: PushService::Apns,
            ..request(&carol, "a", 1)
        },
    )
    .await;
    assert_ne!(fcm.node, apns.node, "services are separate registrations");
    assert!(
        !store
            .unregister_device(PushService::Fcm, &device(4))
            .await
            .unwrap()
    );
    assert!(
        store
            .unregister_device(PushService::Fcm, &carol)
            .await
            .unwrap()
    );
    assert!(
        !store
            .unregister_device(PushService::Fcm, &carol)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .find_registration("example.test", fcm.node.as_str())
            .await
            .unwrap(),
        None
    );
    let apns_found = store
        .find_registration("example.test", apns.node.as_str())
        .await
        .unwrap();
    assert_eq!(apns_found.map(|r| r.service), Some(PushService::Apns));
}

/// A publish finds its registration only by the exact domain and node (nodes are base64, so
/// case matters, on MySQL too).
async fn find_needs_exact_domain_and_node(db: TestDb) {
    let store = db.connect().await;
    let dave = device(5);
    let registration = register(
        &store,
        RegistrationRequest {
            fresh_node: Node::new("aBcDeFgHiJkL"),
            ..request(&dave, "t", 1)
        },
    )
    .await;
    let found = store
        .find_registration("example.test", "aBcDeFgHiJkL")
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&registration));
    assert_eq!(found.map(|r| r.device), Some(dave));
    for (domain, node) in [
        ("example.org", "aBcDeFgHiJkL"),
        ("EXAMPLE.TEST", "aBcDeFgHiJkL"),
        ("example.test", "abcdefghijkl"),
        ("example.test", "aBcDeFgHiJk"),
        ("", ""),
    ] {
        let found = store.find_registration(domain, node).await.unwrap();
        assert_eq!(found, None, "{domain} {node}");
    }
}

/// Only the token still stored can be marked dead, and only once: a re-registration with a
/// new token in between wins, and the first report dates the death.
async fn mark_token_dead_needs_the_current_token(db: TestDb) {
    let store = db.connect().await;
    let erin = device(6);
    let registration = register(&store, request(&erin, "new-token", 1)).await;
    assert!(
        !store
            .mark_token_dead(PushService::Fcm, &erin, "old-token", 10)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_token_dead(PushService::Apns, &erin, "new-token", 10)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_token_dead(PushService::Fcm, &device(7), "new-token", 10)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_token_dead(PushService::Fcm, &erin, "new-token", 20)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_token_dead(PushService::Fcm, &erin, "new-token", 30)
            .await
            .unwrap()
    );
    let found = store
        .find_registration("example.test", registration.node.as_str())
        .await;
    assert_eq!(found.unwrap().and_then(|r| r.dead_since), Some(20));
}

/// Purging removes registrations dead since before the cut-off, and nothing else.
async fn purge_removes_only_long_dead_registrations(db: TestDb) {
    let store = db.connect().await;
    let (old, recent, alive) = (device(8), device(9), device(10));
    register(&store, request(&old, "t", 1)).await;
    register(&store, request(&recent, "t", 1)).await;
    let alive_registration = register(&store, request(&alive, "t", 1)).await;
    assert!(
        store
            .mark_token_dead(PushService::Fcm, &old, "t", 100)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_token_dead(PushService::Fcm, &recent, "t", 200)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_dead_registrations(100).await.unwrap(), 0);
    assert_eq!(store.purge_dead_registrations(150).await.unwrap(), 1);
    assert!(
        !store
            .unregister_device(PushService::Fcm, &old)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_dead_registrations(i64::MAX).await.unwrap(), 1);
    let found = store
        .find_registration("example.test", alive_registration.node.as_str())
        .await;
    assert_eq!(found.unwrap(), Some(alive_registration));
}

/// Tokens of the sizes push services hand out (FCM about 160-200 characters, up to the 4096
/// the schema allows) come back unchanged.
async fn long_tokens_round_trip(db: TestDb) {
    let store = db.connect().await;
    let token: String = "AbC:_-".chars().cycle().take(4096).collect();
    let frank = device(11);
    let registration = register(&store, request(&frank, &token, 1)).await;
    assert_eq!(registration.token, token);
    let found = store
        .find_registration("example.test", registration.node.as_str())
        .await;
    assert_eq!(found.unwrap().map(|r| r.token), Some(token));
}

/// A new device of `account`, allowed `limit` devices in all.
fn new_device_of(account: &str, n: u32, limit: u32) -> RegistrationRequest {
    RegistrationRequest {
        device: DeviceHash::compute(account, &format!("{n:016x}")),
        account: AccountJid::new(account),
        max_devices_per_account: limit,
        ..request(&device(0), &format!("token-{n}"), 1_000 + i64::from(n))
    }
}

/// An account registers up to its limit of live devices; then a new device is refused, while
/// the devices it has keep registering (with a new token too), other accounts are not
/// affected, and a device that leaves or whose token died makes room.
async fn an_account_registers_at_most_its_limit_of_devices(db: TestDb) {
    let store = db.connect().await;
    for n in 1..=3 {
        register(&store, new_device_of("carol@example.test", n, 3)).await;
    }
    let refused = store
        .register_device(new_device_of("carol@example.test", 4, 3))
        .await;
    assert!(
        matches!(refused, Err(StoreError::TooManyDevices(3))),
        "{refused:?}"
    );
    let carol_4 = DeviceHash::compute("carol@example.test", &format!("{:016x}", 4));
    assert!(
        !store
            .unregister_device(PushService::Fcm, &carol_4)
            .await
            .unwrap(),
        "the refused device was stored"
    );

    // Known devices are never refused, not even with a new token.
    register(&store, new_device_of("carol@example.test", 1, 3)).await;
    let changed = RegistrationRequest {
        token: "token-new".to_owned(),
        ..new_device_of("carol@example.test", 2, 3)
    };
    assert_eq!(register(&store, changed).await.token, "token-new");
    // The limit is per account.
    register(&store, new_device_of("dave@example.test", 4, 3)).await;

    // A device whose token died does not count; one that unregisters leaves its place.
    let carol_1 = DeviceHash::compute("carol@example.test", &format!("{:016x}", 1));
    assert!(
        store
            .mark_token_dead(PushService::Fcm, &carol_1, "token-1", 5_000)
            .await
            .unwrap()
    );
    register(&store, new_device_of("carol@example.test", 4, 3)).await;
    let carol_3 = DeviceHash::compute("carol@example.test", &format!("{:016x}", 3));
    assert!(
        store
            .unregister_device(PushService::Fcm, &carol_3)
            .await
            .unwrap()
    );
    register(&store, new_device_of("carol@example.test", 5, 3)).await;
    assert!(matches!(
        store
            .register_device(new_device_of("carol@example.test", 6, 3))
            .await,
        Err(StoreError::TooManyDevices(3))
    ));
}

/// Forty new devices of one account at once, ten allowed: exactly ten are stored, whatever
/// the interleaving, and each of the others is told why.
async fn concurrent_new_devices_never_pass_the_limit(db: TestDb) {
    let store = db.connect().await;
    let tasks: Vec<_> = (1..=40)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .register_device(new_device_of("erin@example.test", n, 10))
                    .await
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => stored += 1,
            Err(StoreError::TooManyDevices(10)) => refused += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((stored, refused), (10, 30));
    let mut rows = 0;
    for n in 1..=40 {
        let erin = DeviceHash::compute("erin@example.test", &format!("{n:016x}"));
        if store
            .unregister_device(PushService::Fcm, &erin)
            .await
            .unwrap()
        {
            rows += 1;
        }
    }
    assert_eq!(rows, 10);
}

/// The account key is drawn once per database: a store opened again (or a second instance)
/// tags the same account the same way, so its limit still holds.
async fn the_limit_holds_across_reopening(db: TestDb) {
    let first = db.connect().await;
    register(&first, new_device_of("frank@example.test", 1, 1)).await;
    first.close().await;
    let again = db.connect().await;
    assert!(matches!(
        again
            .register_device(new_device_of("frank@example.test", 2, 1))
            .await,
        Err(StoreError::TooManyDevices(1))
    ));
    // The stored device is known: its re-registration passes.
    register(&again, new_device_of("frank@example.test", 1, 1)).await;
}

on_every_backend! {
    an_account_registers_at_most_its_limit_of_devices => crate::registrations::an_account_registers_at_most_its_limit_of_devices,
    concurrent_new_devices_never_pass_the_limit => crate::registrations::concurrent_new_devices_never_pass_the_limit,
    the_limit_holds_across_reopening => crate::registrations::the_limit_holds_across_reopening,
    re_registration_keeps_node_and_secret => crate::registrations::re_registration_keeps_node_and_secret,
    concurrent_registrations_agree => crate::registrations::concurrent_registrations_agree,
    unregister_reports_whether_a_row_existed => crate::registrations::unregister_reports_whether_a_row_existed,
    find_needs_exact_domain_and_node => crate::registrations::find_needs_exact_domain_and_node,
    mark_token_dead_needs_the_current_token => crate::registrations::mark_token_dead_needs_the_current_token,
    purge_removes_only_long_dead_registrations => crate::registrations::purge_removes_only_long_dead_registrations,
    long_tokens_round_trip => crate::registrations::long_tokens_round_trip,
}
