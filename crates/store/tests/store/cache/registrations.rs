//! Registrations through the cache.

use std::time::Duration;

use pushgate_core::{
    DeviceHash, Node, PushService, Registration, RegistrationRequest, RegistrationStore as _,
    Secret, Store,
};
use pushgate_store::{CacheConfig, CachingStore};

use super::{TTL_MS, instances};
use crate::support::{TestDb, on_every_backend};

const DOMAIN: &str = "example.test";

fn device(n: u32) -> DeviceHash {
    DeviceHash::compute("alice@example.test", &format!("{n:016x}"))
}

fn request(device: &DeviceHash, token: &str) -> RegistrationRequest {
    RegistrationRequest {
        service: PushService::Fcm,
        device: device.clone(),
        domain: DOMAIN.to_owned(),
        // An account per device: these tests fill the cache, not an account.
        account: pushgate_core::AccountJid::new(format!("{}@{DOMAIN}", device.as_str())),
        max_devices_per_account: 32,
        token: token.to_owned(),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now: 1_000,
    }
}

async fn register(store: &impl Store, device: &DeviceHash, token: &str) -> Registration {
    store
        .register_device(request(device, token))
        .await
        .expect("register")
}

async fn find(store: &impl Store, node: &Node) -> Option<Registration> {
    store
        .find_registration(DOMAIN, node.as_str())
        .await
        .expect("find")
}

async fn token_found(store: &impl Store, node: &Node) -> Option<String> {
    find(store, node).await.map(|found| found.token)
}

/// Once read, a registration is answered from memory: a new token recorded by another
/// instance is not seen until the answer is a TTL old, and then it is.
async fn lookups_are_answered_from_memory_until_the_ttl(db: TestDb) {
    let i = instances(&db, 100).await;
    let alice = device(1);
    let first = register(&i.cached, &alice, "token-1").await;
    assert_eq!(find(&i.cached, &first.node).await, Some(first.clone()));
    assert_eq!(i.cached.cached_registrations(), 1);

    register(&i.other, &alice, "token-2").await;
    i.clock.advance(TTL_MS - 1);
    assert_eq!(
        token_found(&i.cached, &first.node).await.as_deref(),
        Some("token-1"),
        "not answered from memory"
    );
    // Under another domain the kept answer is not given; the database decides.
    assert_eq!(
        i.cached
            .find_registration("other.example.test", first.node.as_str())
            .await
            .unwrap(),
        None
    );
    i.clock.advance(1);
    assert_eq!(
        token_found(&i.cached, &first.node).await.as_deref(),
        Some("token-2"),
        "kept past the TTL"
    );
}

/// Registering, marking dead, unregistering and purging through the cache are seen by the next
/// lookup at once, with no TTL to wait.
async fn every_write_through_the_cache_is_seen_at_once(db: TestDb) {
    let i = instances(&db, 100).await;
    let alice = device(1);
    let node = register(&i.cached, &alice, "token-1").await.node;
    assert!(find(&i.cached, &node).await.is_some());

    register(&i.cached, &alice, "token-2").await;
    assert_eq!(
        token_found(&i.cached, &node).await.as_deref(),
        Some("token-2")
    );

    assert!(
        i.cached
            .mark_token_dead(PushService::Fcm, &alice, "token-2", 2_000)
            .await
            .unwrap()
    );
    assert_eq!(
        find(&i.cached, &node).await.unwrap().dead_since,
        Some(2_000)
    );

    register(&i.cached, &alice, "token-3").await;
    assert!(find(&i.cached, &node).await.is_some());
    assert!(
        i.cached
            .unregister_device(PushService::Fcm, &alice)
            .await
            .unwrap()
    );
    assert_eq!(find(&i.cached, &node).await, None);
    assert_eq!(i.cached.cached_registrations(), 0);

    // Another instance marks a kept registration dead; the purge through the cache drops
    // what it kept, so the purged row is not answered.
    let node = register(&i.cached, &alice, "token-4").await.node;
    assert!(find(&i.cached, &node).await.is_some());
    assert!(
        i.other
            .mark_token_dead(PushService::Fcm, &alice, "token-4", 3_000)
            .await
            .unwrap()
    );
    assert_eq!(
        find(&i.cached, &node).await.unwrap().dead_since,
        None,
        "not answered from memory"
    );
    assert_eq!(i.cached.purge_dead_registrations(4_000).await.unwrap(), 1);
    assert_eq!(find(&i.cached, &node).await, None);
}

/// A token found dead whose row another instance has given a new token: marking it dead
/// through the cache changes nothing, and the next lookup (the app server's re-read) gets the
/// new token from the database, not the kept old one.
async fn a_stale_dead_token_makes_way_for_the_new_one(db: TestDb) {
    let i = instances(&db, 100).await;
    let alice = device(1);
    let node = register(&i.cached, &alice, "token-1").await.node;
    assert!(find(&i.cached, &node).await.is_some());
    register(&i.other, &alice, "token-2").await;
    assert_eq!(
        token_found(&i.cached, &node).await.as_deref(),
        Some("token-1")
    );

    assert!(
        !i.cached
            .mark_token_dead(PushService::Fcm, &alice, "token-1", 2_000)
            .await
            .unwrap()
    );
    let fresh = find(&i.cached, &node).await.unwrap();
    assert_eq!((fresh.token.as_str(), fresh.dead_since), ("token-2", None));
}

/// Answers that would cancel a registration if stale are never kept: a dead registration
/// revived by another instance, and a node not (yet) known, are seen at once.
async fn dead_and_missing_registrations_are_not_kept(db: TestDb) {
    let i = instances(&db, 100).await;
    let alice = device(1);
    let node = register(&i.cached, &alice, "token-1").await.node;
    i.other
        .mark_token_dead(PushService::Fcm, &alice, "token-1", 2_000)
        .await
        .unwrap();
    // Past the TTL of nothing: the first lookup reads the dead row.
    assert!(find(&i.cached, &node).await.unwrap().dead_since.is_some());
    register(&i.other, &alice, "token-2").await;
    let revived = find(&i.cached, &node).await.unwrap();
    assert_eq!(
        (revived.token.as_str(), revived.dead_since),
        ("token-2", None)
    );

    let bob = device(2);
    let bob_node = Node::generate();
    assert_eq!(find(&i.cached, &bob_node).await, None);
    let registered = RegistrationRequest {
        fresh_node: bob_node.clone(),
        ..request(&bob, "bob-token")
    };
    i.other.register_device(registered).await.unwrap();
    assert_eq!(
        token_found(&i.cached, &bob_node).await.as_deref(),
        Some("bob-token")
    );
}

/// The cache never holds more than its bound, and every lookup still gets the right row.
async fn the_cache_keeps_at_most_max_entries(db: TestDb) {
    let i = instances(&db, 8).await;
    let mut registrations = Vec::new();
    for n in 0..40 {
        registrations.push(register(&i.other, &device(n), &format!("token-{n}")).await);
    }
    for round in 0..2 {
        for (n, registration) in registrations.iter().enumerate() {
            i.clock.advance(1);
            assert_eq!(
                find(&i.cached, &registration.node).await.as_ref(),
                Some(registration),
                "round {round}, device {n}"
            );
            assert!(i.cached.cached_registrations() <= 8);
        }
    }
    // The newest stay: the last one read is answered from memory.
    let last = registrations.last().unwrap();
    register(&i.other, &device(39), "token-new").await;
    assert_eq!(
        token_found(&i.cached, &last.node).await.as_deref(),
        Some("token-39")
    );
}

/// With caching off every lookup reaches the database.
async fn a_disabled_cache_passes_everything_through(db: TestDb) {
    let cached = CachingStore::new(db.connect().await, CacheConfig::DISABLED);
    let other = db.connect().await;
    let alice = device(1);
    let node = register(&cached, &alice, "token-1").await.node;
    assert!(find(&cached, &node).await.is_some());
    register(&other, &alice, "token-2").await;
    assert_eq!(
        token_found(&cached, &node).await.as_deref(),
        Some("token-2")
    );
    assert_eq!(cached.cached_registrations(), 0);
    assert!(
        !CacheConfig {
            ttl: Duration::ZERO,
            ..CacheConfig::default()
        }
        .is_enabled()
    );
}

on_every_backend! {
    lookups_are_answered_from_memory_until_the_ttl => crate::cache::registrations::lookups_are_answered_from_memory_until_the_ttl,
    every_write_through_the_cache_is_seen_at_once => crate::cache::registrations::every_write_through_the_cache_is_seen_at_once,
    a_stale_dead_token_makes_way_for_the_new_one => crate::cache::registrations::a_stale_dead_token_makes_way_for_the_new_one,
    dead_and_missing_registrations_are_not_kept => crate::cache::registrations::dead_and_missing_registrations_are_not_kept,
    the_cache_keeps_at_most_max_entries => crate::cache::registrations::the_cache_keeps_at_most_max_entries,
    a_disabled_cache_passes_everything_through => crate::cache::registrations::a_disabled_cache_passes_everything_through,
}
