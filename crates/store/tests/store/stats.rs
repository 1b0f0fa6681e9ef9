//! `SqlStore::stats`: what `pushgate stats` prints, counted the same on every backend.

use pushgate_core::{
    AccountJid, DeviceHash, EndpointId, MessageStore as _, MessageStoreLimits, NewStoredMessage,
    Node, OwnerKey, PushService, RegistrationRequest, RegistrationStore as _, RevocationStore as _,
    Secret,
};
use pushgate_store::{RegistrationCount, StoreStats};

use crate::support::{TestDb, on_every_backend};

fn request(service: PushService, account: &str, domain: &str, n: u32) -> RegistrationRequest {
    RegistrationRequest {
        service,
        device: DeviceHash::compute(account, &format!("{n:016x}")),
        domain: domain.to_owned(),
        account: AccountJid::new(account),
        max_devices_per_account: 32,
        token: format!("token-{account}-{n}"),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now: 1_000,
    }
}

fn message(owner: &str, instance: &str) -> NewStoredMessage {
    NewStoredMessage {
        owner: OwnerKey::of_jid(owner),
        endpoint_token: format!("v2.local.{owner}.{instance}"),
        application: "bTsmTcCxBSUtkFqj4vhVEGM5vJIfDBtVwlRIq9zB8bU=".to_owned(),
        instance: instance.to_owned(),
        topic: None,
        urgency: None,
        body: b"kept".to_vec(),
        received_at: 1_000,
        expires_at: 10_000,
    }
}

async fn counts_by_service_and_domain_and_of_messages_and_revocations(db: TestDb) {
    let store = db.connect().await;
    assert_eq!(store.stats().await.unwrap(), StoreStats::default());

    for n in 0..3 {
        store
            .register_device(request(PushService::Fcm, "alice@a.test", "a.test", n))
            .await
            .unwrap();
    }
    store
        .register_device(request(PushService::Fcm, "bob@b.test", "b.test", 0))
        .await
        .unwrap();
    store
        .register_device(request(PushService::Apns, "carol@a.test", "a.test", 0))
        .await
        .unwrap();
    let dead = request(PushService::Fcm, "alice@a.test", "a.test", 1);
    assert!(
        store
            .mark_token_dead(PushService::Fcm, &dead.device, &dead.token, 2_000)
            .await
            .unwrap()
    );
    let limits = MessageStoreLimits {
        max_per_owner: 100,
        max_total: 1_000,
    };
    for (owner, instance) in [
        ("x@a.test/1", "i1"),
        ("x@a.test/1", "i2"),
        ("y@b.test/2", "i1"),
    ] {
        store
            .store_message(message(owner, instance), limits)
            .await
            .unwrap();
    }
    store
        .revoke_endpoint(&EndpointId::of_token("v2.local.revoked"), 10_000)
        .await
        .unwrap();

    let stats = store.stats().await.unwrap();
    let count = |service: &str, domain: &str, live, dead| RegistrationCount {
        service: service.to_owned(),
        domain: domain.to_owned(),
        live,
        dead,
    };
    assert_eq!(
        stats.registrations,
        [
            count("apns", "a.test", 1, 0),
            count("fcm", "a.test", 2, 1),
            count("fcm", "b.test", 1, 0),
        ]
    );
    assert_eq!(stats.stored_messages, 3);
    assert_eq!(stats.owners_with_messages, 2);
    assert_eq!(stats.revocations, 1);
}

on_every_backend! {
    counts_by_service_and_domain_and_of_messages_and_revocations => crate::stats::counts_by_service_and_domain_and_of_messages_and_revocations,
}
