//! Registrations kept from p2 (`pushgate import-p2`): inserted as they are unless the
//! (service, device) is stored already, on every backend.

use pushgate_core::{
    AccountJid, DeviceHash, Node, PushService, Registration, RegistrationRequest,
    RegistrationStore as _, Secret, StoreError,
};

use crate::support::{TestDb, on_every_backend};

/// A registration as p2 kept it for `account`'s device `n`.
fn from_p2(account: &str, n: u32, token: &str) -> Registration {
    Registration {
        service: PushService::Fcm,
        device: DeviceHash::compute(account, &format!("{n:016x}")),
        domain: "example.test".to_owned(),
        token: token.to_owned(),
        node: Node::generate(),
        secret: Secret::generate(),
        created_at: 1_000,
        updated_at: 1_000,
        dead_since: None,
    }
}

/// A registration through `register-push-fcm` of `account`'s device `n`.
fn registration_request(account: &str, n: u32, token: &str, limit: u32) -> RegistrationRequest {
    RegistrationRequest {
        service: PushService::Fcm,
        device: DeviceHash::compute(account, &format!("{n:016x}")),
        domain: "example.test".to_owned(),
        account: AccountJid::new(account),
        max_devices_per_account: limit,
        token: token.to_owned(),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now: 5_000,
    }
}

/// The row goes in as it is and a publish finds it by (domain, node) with its secret and
/// token; offering it again inserts nothing and changes nothing.
async fn an_imported_registration_is_found_as_it_was_and_imports_once(db: TestDb) {
    let store = db.connect().await;
    let kept = from_p2("alice@example.test", 1, "p2-token");
    assert!(store.insert_registration_if_absent(&kept).await.unwrap());
    let found = store
        .find_registration("example.test", kept.node.as_str())
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&kept));

    let again = Registration {
        token: "other-token".to_owned(),
        node: Node::generate(),
        secret: Secret::generate(),
        ..kept.clone()
    };
    assert!(!store.insert_registration_if_absent(&again).await.unwrap());
    assert!(!store.insert_registration_if_absent(&kept).await.unwrap());
    let found = store
        .find_registration("example.test", kept.node.as_str())
        .await
        .unwrap();
    assert_eq!(found, Some(kept));
    let replaced = store
        .find_registration("example.test", again.node.as_str())
        .await
        .unwrap();
    assert_eq!(replaced, None);
}

/// A device that registered with pushgate already keeps that (newer) registration.
async fn a_registration_already_present_is_left_as_it_is(db: TestDb) {
    let store = db.connect().await;
    let live = store
        .register_device(registration_request("bob@example.test", 1, "new-token", 32))
        .await
        .unwrap();
    let old = from_p2("bob@example.test", 1, "old-token");
    assert!(!store.insert_registration_if_absent(&old).await.unwrap());
    let found = store
        .find_registration("example.test", live.node.as_str())
        .await
        .unwrap();
    assert_eq!(found, Some(live));
    assert_eq!(
        store
            .find_registration("example.test", old.node.as_str())
            .await
            .unwrap(),
        None
    );
}

/// Imported rows have no account tag: they do not count against the limit on devices, and
/// when the device registers again it keeps p2's node and secret (and joins the count).
async fn imported_rows_neither_count_nor_block_the_device_limit(db: TestDb) {
    let store = db.connect().await;
    let carol = "carol@example.test";
    let imported: Vec<Registration> = (1..=3).map(|n| from_p2(carol, n, "p2-token")).collect();
    for registration in &imported {
        assert!(
            store
                .insert_registration_if_absent(registration)
                .await
                .unwrap()
        );
    }
    // Limit 2 with three imported devices: two new devices still fit, a third does not.
    for n in 10..=11 {
        store
            .register_device(registration_request(carol, n, "t", 2))
            .await
            .unwrap();
    }
    let refused = store
        .register_device(registration_request(carol, 12, "t", 2))
        .await;
    assert!(
        matches!(refused, Err(StoreError::TooManyDevices(2))),
        "{refused:?}"
    );
    // A known device is never refused: the imported one registers again and keeps p2's node
    // and secret, with its new token.
    let again = store
        .register_device(registration_request(carol, 1, "fresh-token", 2))
        .await
        .unwrap();
    assert_eq!(again.node, imported[0].node);
    assert_eq!(again.secret, imported[0].secret);
    assert_eq!(again.token, "fresh-token");
    assert_eq!(again.created_at, imported[0].created_at);
}

on_every_backend! {
    an_imported_registration_is_found_as_it_was_and_imports_once => crate::import::an_imported_registration_is_found_as_it_was_and_imports_once,
    a_registration_already_present_is_left_as_it_is => crate::import::a_registration_already_present_is_left_as_it_is,
    imported_rows_neither_count_nor_block_the_device_limit => crate::import::imported_rows_neither_count_nor_block_the_device_limit,
}
