//! Revocation answers through the cache.

use pushgate_core::{EndpointId, RevocationStore as _, Store};

use super::{TTL_MS, instances};
use crate::support::{TestDb, on_every_backend};

const NOW: i64 = 1_000;

async fn revoked(store: &impl Store, endpoint: &EndpointId, now: i64) -> bool {
    store
        .is_endpoint_revoked(endpoint, now)
        .await
        .expect("is revoked")
}

/// A revocation recorded through the cache is seen at once, though "not revoked" was kept,
/// and holds until its expiry and no longer.
async fn a_revocation_through_the_cache_is_seen_at_once(db: TestDb) {
    let i = instances(&db, 100).await;
    let endpoint = EndpointId::of_token("v2.local.endpoint-one");
    assert!(!revoked(&i.cached, &endpoint, NOW).await);
    assert_eq!(i.cached.cached_endpoints(), 1);

    i.cached.revoke_endpoint(&endpoint, 5_000).await.unwrap();
    assert!(revoked(&i.cached, &endpoint, NOW).await);
    assert!(revoked(&i.cached, &endpoint, 4_999).await);
    assert!(!revoked(&i.cached, &endpoint, 5_000).await);
    // Revoking again never shortens it.
    i.cached.revoke_endpoint(&endpoint, 3_000).await.unwrap();
    assert!(revoked(&i.cached, &endpoint, 4_999).await);
}

/// "Not revoked" is answered from memory: a revocation recorded by another instance is seen
/// once that answer is a TTL old. "Revoked" from the database is kept the same way.
async fn a_revocation_elsewhere_is_learned_within_the_ttl(db: TestDb) {
    let i = instances(&db, 100).await;
    let endpoint = EndpointId::of_token("v2.local.endpoint-one");
    assert!(!revoked(&i.cached, &endpoint, NOW).await);
    i.other.revoke_endpoint(&endpoint, 100_000).await.unwrap();
    i.clock.advance(TTL_MS - 1);
    assert!(
        !revoked(&i.cached, &endpoint, NOW).await,
        "not answered from memory"
    );
    i.clock.advance(1);
    assert!(
        revoked(&i.cached, &endpoint, NOW).await,
        "kept past the TTL"
    );

    // Now kept as revoked: the database's purge (elsewhere) is not what decides it.
    i.other.purge_expired_revocations(200_000).await.unwrap();
    assert!(revoked(&i.cached, &endpoint, NOW).await);
}

/// Purging expired revocations through the cache drops what it kept about them.
async fn expired_revocations_are_dropped(db: TestDb) {
    let i = instances(&db, 100).await;
    let early = EndpointId::of_token("v2.local.early");
    let late = EndpointId::of_token("v2.local.late");
    i.cached.revoke_endpoint(&early, 2_000).await.unwrap();
    i.cached.revoke_endpoint(&late, 3_000).await.unwrap();
    assert_eq!(i.cached.cached_endpoints(), 2);

    assert_eq!(i.cached.purge_expired_revocations(2_000).await.unwrap(), 1);
    assert_eq!(i.cached.cached_endpoints(), 1);
    assert!(!revoked(&i.cached, &early, 2_000).await);
    assert!(revoked(&i.cached, &late, 2_000).await);

    // Answers past their TTL go with the next purge too.
    i.clock.advance(TTL_MS);
    i.cached.purge_expired_revocations(2_000).await.unwrap();
    assert_eq!(i.cached.cached_endpoints(), 0);
}

/// The endpoint answers never outgrow their bound, and each one stays right.
async fn endpoint_answers_keep_at_most_max_entries(db: TestDb) {
    let i = instances(&db, 8).await;
    let endpoints: Vec<EndpointId> = (0..40)
        .map(|n| EndpointId::of_token(&format!("v2.local.endpoint-{n}")))
        .collect();
    for endpoint in endpoints.iter().step_by(3) {
        i.other.revoke_endpoint(endpoint, 100_000).await.unwrap();
    }
    for (n, endpoint) in endpoints.iter().enumerate() {
        i.clock.advance(1);
        assert_eq!(
            revoked(&i.cached, endpoint, NOW).await,
            n % 3 == 0,
            "endpoint {n}"
        );
        assert!(i.cached.cached_endpoints() <= 8);
    }
}

on_every_backend! {
    a_revocation_through_the_cache_is_seen_at_once => crate::cache::revocations::a_revocation_through_the_cache_is_seen_at_once,
    a_revocation_elsewhere_is_learned_within_the_ttl => crate::cache::revocations::a_revocation_elsewhere_is_learned_within_the_ttl,
    expired_revocations_are_dropped => crate::cache::revocations::expired_revocations_are_dropped,
    endpoint_answers_keep_at_most_max_entries => crate::cache::revocations::endpoint_answers_keep_at_most_max_entries,
}
