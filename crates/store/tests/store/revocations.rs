//! UnifiedPush revocations on every backend.

use pushgate_core::{EndpointId, RevocationStore as _};

use crate::support::{TestDb, on_every_backend};

/// A revoked endpoint stays revoked until its expiry and no longer; revoking again is no
/// error and never shortens the revocation.
async fn revocation_lasts_until_expiry(db: TestDb) {
    let store = db.connect().await;
    let endpoint = EndpointId::of_token("v2.local.endpoint-one");
    let other = EndpointId::of_token("v2.local.endpoint-two");
    assert!(!store.is_endpoint_revoked(&endpoint, 0).await.unwrap());

    store.revoke_endpoint(&endpoint, 1_000).await.unwrap();
    assert!(store.is_endpoint_revoked(&endpoint, 0).await.unwrap());
    assert!(store.is_endpoint_revoked(&endpoint, 999).await.unwrap());
    assert!(!store.is_endpoint_revoked(&endpoint, 1_000).await.unwrap());
    assert!(!store.is_endpoint_revoked(&other, 0).await.unwrap());

    store.revoke_endpoint(&endpoint, 1_000).await.unwrap();
    store.revoke_endpoint(&endpoint, 500).await.unwrap();
    assert!(
        store.is_endpoint_revoked(&endpoint, 999).await.unwrap(),
        "shortened"
    );
    store.revoke_endpoint(&endpoint, 2_000).await.unwrap();
    assert!(
        store.is_endpoint_revoked(&endpoint, 1_999).await.unwrap(),
        "not extended"
    );
}

/// Purging deletes the revocations no longer in force and counts them.
async fn purge_drops_expired_revocations(db: TestDb) {
    let store = db.connect().await;
    let endpoints: Vec<EndpointId> = (0..3)
        .map(|i| EndpointId::of_token(&format!("token-{i}")))
        .collect();
    for (endpoint, expiry) in endpoints.iter().zip([100, 200, 300]) {
        store.revoke_endpoint(endpoint, expiry).await.unwrap();
    }
    assert_eq!(store.purge_expired_revocations(99).await.unwrap(), 0);
    assert_eq!(store.purge_expired_revocations(200).await.unwrap(), 2);
    assert_eq!(store.purge_expired_revocations(200).await.unwrap(), 0);
    assert!(store.is_endpoint_revoked(&endpoints[2], 200).await.unwrap());
    // A purged revocation can be recorded again.
    store.revoke_endpoint(&endpoints[0], 1_000).await.unwrap();
    assert!(store.is_endpoint_revoked(&endpoints[0], 500).await.unwrap());
}

on_every_backend! {
    revocation_lasts_until_expiry => crate::revocations::revocation_lasts_until_expiry,
    purge_drops_expired_revocations => crate::revocations::purge_drops_expired_revocations,
}
