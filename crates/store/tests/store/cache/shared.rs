//! Two instances with caches on one PostgreSQL database: what one changes, the other's cache
//! drops within a second (LISTEN/NOTIFY), though each answer is trusted for a minute.

use std::time::{Duration, Instant};

use pushgate_core::{
    AccountJid, DeviceHash, EndpointId, Node, PushService, RegistrationRequest,
    RegistrationStore as _, RevocationStore as _, Secret,
};
use pushgate_store::{Backend, CacheConfig, CachingStore, SqlStore};

use crate::support::TestDb;

const DOMAIN: &str = "example.test";
/// The bound for another instance's change to be seen.
const WITHIN: Duration = Duration::from_secs(1);

fn request(device: &DeviceHash, token: &str) -> RegistrationRequest {
    RegistrationRequest {
        service: PushService::Apns,
        device: device.clone(),
        domain: DOMAIN.to_owned(),
        account: AccountJid::new("alice@example.test"),
        max_devices_per_account: 32,
        token: token.to_owned(),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now: 1_000,
    }
}

async fn instance(db: &TestDb) -> CachingStore<SqlStore> {
    let config = CacheConfig {
        max_entries: 100,
        ttl: Duration::from_secs(60),
    };
    CachingStore::new(db.connect().await, config).shared_with_other_instances(&db.url)
}

/// Polls until `$seen` holds, at most [`WITHIN`] and a little for a busy machine; how long it
/// took.
macro_rules! seen_within {
    ($seen:expr) => {{
        let started = Instant::now();
        loop {
            if $seen {
                break started.elapsed();
            }
            assert!(
                started.elapsed() < WITHIN + Duration::from_millis(500),
                "not seen within {WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

async fn changes_on_one_instance_reach_the_other_s_cache_within_a_second(db: TestDb) {
    assert_eq!(db.backend, Backend::Postgres);
    let a = instance(&db).await;
    let b = instance(&db).await;
    // Both listeners connect in the background; give them a moment before anything is said.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A re-registration with a new token on A: B kept the old one.
    let device = DeviceHash::compute("alice@example.test", "iphone");
    let first = a
        .register_device(request(&device, &"aa".repeat(32)))
        .await
        .unwrap();
    let node = first.node.as_str().to_owned();
    // A's notification of that registration reaches B too; a read racing it is not kept,
    // so B reads once it has been heard.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cached = b.find_registration(DOMAIN, &node).await.unwrap().unwrap();
    assert_eq!(cached.token, "aa".repeat(32));
    assert_eq!(b.cached_registrations(), 1);
    a.register_device(request(&device, &"bb".repeat(32)))
        .await
        .unwrap();
    let took = seen_within!(
        b.find_registration(DOMAIN, &node)
            .await
            .unwrap()
            .unwrap()
            .token
            == "bb".repeat(32)
    );
    eprintln!("re-registration seen by the other instance after {took:?}");

    // A token called dead on A.
    let marked = a
        .mark_token_dead(PushService::Apns, &device, &"bb".repeat(32), 2_000)
        .await
        .unwrap();
    assert!(marked);
    let took = seen_within!(
        b.find_registration(DOMAIN, &node)
            .await
            .unwrap()
            .is_some_and(|registration| registration.dead_since.is_some())
    );
    eprintln!("dead token seen by the other instance after {took:?}");

    // A revocation on A: B kept "not revoked".
    let endpoint = EndpointId::of_token("v2.local.shared");
    assert!(!b.is_endpoint_revoked(&endpoint, 1_000).await.unwrap());
    a.revoke_endpoint(&endpoint, 10_000_000).await.unwrap();
    let took = seen_within!(b.is_endpoint_revoked(&endpoint, 1_000).await.unwrap());
    eprintln!("revocation seen by the other instance after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_instance_reach_the_other_s_cache_within_a_second_postgres() {
    crate::support::run(Backend::Postgres, |db| {
        Box::pin(changes_on_one_instance_reach_the_other_s_cache_within_a_second(db))
    })
    .await;
}
