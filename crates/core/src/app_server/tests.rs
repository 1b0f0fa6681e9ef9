//! The publish table and the registration rules of docs/protocol.md A.2, row by row.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::clock::FixedClock;
use crate::test_support::{MemoryStore, ScriptedWaker, WakeCall};

struct Fixture {
    store: Arc<MemoryStore>,
    waker: Arc<ScriptedWaker>,
    server: AppServer,
}

fn fixture(outcome: WakeOutcome) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let waker = Arc::new(ScriptedWaker::answering(outcome));
    let mut wakers: HashMap<PushService, Arc<dyn Waker>> = HashMap::new();
    wakers.insert(PushService::Fcm, waker.clone());
    let server = AppServer::new(
        store.clone(),
        wakers,
        Arc::new(FixedClock::new(1_700_000_000_000)),
    );
    Fixture {
        store,
        waker,
        server,
    }
}

pub(super) fn conversations_register<'a>(token: &'a str) -> RegisterCommand<'a> {
    RegisterCommand {
        bare_jid: "xiaomia1@jabber.de",
        domain: "jabber.de",
        token: Some(token),
        android_id: Some("92afd7a91cdba9a0"),
        ..RegisterCommand::default()
    }
}

pub(super) fn publish<'a>(node: &'a str, secret: &'a str) -> PublishRequest<'a> {
    PublishRequest {
        from_domain: "jabber.de",
        from_has_resource: false,
        node: Some(node),
        secret: Some(secret),
    }
}

#[tokio::test]
async fn registration_hashes_the_bare_jid_and_android_id() {
    let f = fixture(WakeOutcome::Accepted);
    let registration = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    assert_eq!(
        registration.device.as_str(),
        "ec164939a8485ee6b7f7871071a11c7bb18aead5"
    );
    assert_eq!(registration.domain, "jabber.de");
    assert_eq!(registration.node.as_str().len(), 12);
    assert_eq!(registration.secret.expose().len(), 24);
}

#[tokio::test]
async fn re_registration_keeps_node_and_secret_and_updates_the_token() {
    let f = fixture(WakeOutcome::Accepted);
    let first = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    let second = f
        .server
        .register(PushService::Fcm, conversations_register("tok-2"))
        .await
        .unwrap();
    assert_eq!(first.node, second.node);
    assert_eq!(first.secret, second.secret);
    assert_eq!(second.token, "tok-2");
    assert_eq!(f.store.registrations().len(), 1);
}

#[tokio::test]
async fn device_id_is_preferred_over_android_id() {
    let f = fixture(WakeOutcome::Accepted);
    let command = RegisterCommand {
        device_id: Some("0123456789abcdef"),
        bare_jid: "alice@example.test",
        ..conversations_register("tok")
    };
    let registration = f.server.register(PushService::Fcm, command).await.unwrap();
    assert_eq!(
        registration.device.as_str(),
        "9f99d323981c8c2c9ce71c1fb91bd7f9256073c2"
    );
}

#[tokio::test]
async fn bad_register_forms_are_refused() {
    let f = fixture(WakeOutcome::Accepted);
    let no_token = RegisterCommand {
        token: Some("  "),
        ..conversations_register("x")
    };
    assert!(matches!(
        f.server.register(PushService::Fcm, no_token).await,
        Err(CommandError::MissingToken)
    ));
    let no_device = RegisterCommand {
        android_id: None,
        ..conversations_register("x")
    };
    assert!(matches!(
        f.server.register(PushService::Fcm, no_device).await,
        Err(CommandError::MissingDeviceId)
    ));
    let long = "x".repeat(MAX_PUSH_TOKEN_LEN + 1);
    let too_long = RegisterCommand {
        token: Some(&long),
        ..conversations_register("x")
    };
    assert!(matches!(
        f.server.register(PushService::Fcm, too_long).await,
        Err(CommandError::TokenTooLong)
    ));
    let muc = RegisterCommand {
        has_muc: true,
        ..conversations_register("x")
    };
    assert!(matches!(
        f.server.register(PushService::Fcm, muc).await,
        Err(CommandError::MucUnsupported)
    ));
    assert!(f.store.registrations().is_empty());
}

#[tokio::test]
async fn unregister_removes_once() {
    let f = fixture(WakeOutcome::Accepted);
    f.server
        .register(PushService::Fcm, conversations_register("tok"))
        .await
        .unwrap();
    f.server
        .unregister(PushService::Fcm, conversations_register("tok"))
        .await
        .unwrap();
    assert!(matches!(
        f.server
            .unregister(PushService::Fcm, conversations_register("tok"))
            .await,
        Err(CommandError::UnknownDevice)
    ));
}

#[tokio::test]
async fn a_good_publish_wakes_with_token_and_hash_only() {
    let f = fixture(WakeOutcome::Accepted);
    let r = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    let outcome = f
        .server
        .publish(publish(r.node.as_str(), r.secret.expose()))
        .await;
    assert_eq!(outcome, PublishOutcome::Woken);
    assert_eq!(
        f.waker.calls(),
        vec![WakeCall {
            service: PushService::Fcm,
            token: "tok-1".to_owned(),
            device: "ec164939a8485ee6b7f7871071a11c7bb18aead5".to_owned()
        }]
    );
}

#[tokio::test]
async fn publish_refusals_send_nothing() {
    let f = fixture(WakeOutcome::Accepted);
    let r = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    let node = r.node.as_str();
    let secret = r.secret.expose();
    assert_eq!(
        f.server.publish(publish(node, "wrong")).await,
        PublishOutcome::Forbidden
    );
    assert_eq!(
        f.server
            .publish(PublishRequest {
                secret: None,
                ..publish(node, secret)
            })
            .await,
        PublishOutcome::Forbidden
    );
    assert_eq!(
        f.server
            .publish(PublishRequest {
                node: None,
                ..publish(node, secret)
            })
            .await,
        PublishOutcome::Forbidden
    );
    assert_eq!(
        f.server
            .publish(PublishRequest {
                from_has_resource: true,
                ..publish(node, secret)
            })
            .await,
        PublishOutcome::Forbidden
    );
    assert_eq!(
        f.server.publish(publish("nonexistent12", secret)).await,
        PublishOutcome::NoSuchNode
    );
    assert_eq!(
        f.server
            .publish(PublishRequest {
                from_domain: "other.example",
                ..publish(node, secret)
            })
            .await,
        PublishOutcome::NoSuchNode
    );
    assert!(f.waker.calls().is_empty());
}

#[tokio::test]
async fn a_dead_token_is_marked_and_revived_by_re_registration() {
    let f = fixture(WakeOutcome::TokenDead);
    let r = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    assert_eq!(
        f.server
            .publish(publish(r.node.as_str(), r.secret.expose()))
            .await,
        PublishOutcome::TokenDead
    );
    assert!(f.store.registrations()[0].dead_since.is_some());
    // Known dead: FCM is not asked again.
    assert_eq!(
        f.server
            .publish(publish(r.node.as_str(), r.secret.expose()))
            .await,
        PublishOutcome::TokenDead
    );
    assert_eq!(f.waker.calls().len(), 1);
    f.waker.answer(WakeOutcome::Accepted);
    let again = f
        .server
        .register(PushService::Fcm, conversations_register("tok-2"))
        .await
        .unwrap();
    assert_eq!(again.node, r.node);
    assert!(again.dead_since.is_none());
    assert_eq!(
        f.server
            .publish(publish(r.node.as_str(), r.secret.expose()))
            .await,
        PublishOutcome::Woken
    );
}

#[tokio::test]
async fn transient_and_rejected_wake_ups_are_unavailable() {
    for outcome in [
        WakeOutcome::Transient("503".into()),
        WakeOutcome::Rejected("INVALID_ARGUMENT".into()),
    ] {
        let f = fixture(outcome);
        let r = f
            .server
            .register(PushService::Fcm, conversations_register("tok-1"))
            .await
            .unwrap();
        assert_eq!(
            f.server
                .publish(publish(r.node.as_str(), r.secret.expose()))
                .await,
            PublishOutcome::Unavailable
        );
        assert!(f.store.registrations()[0].dead_since.is_none());
    }
}

#[tokio::test]
async fn a_service_without_sender_is_unavailable_not_cancelled() {
    let f = fixture(WakeOutcome::Accepted);
    let apns_token = "0f".repeat(32);
    let r = f
        .server
        .register(PushService::Apns, conversations_register(&apns_token))
        .await
        .unwrap();
    assert_eq!(
        f.server
            .publish(publish(r.node.as_str(), r.secret.expose()))
            .await,
        PublishOutcome::Unavailable
    );
    assert!(f.waker.calls().is_empty());
}

#[tokio::test]
async fn a_token_not_of_its_service_s_shape_is_refused_and_not_stored() {
    let f = fixture(WakeOutcome::Accepted);
    for (service, token) in [
        (PushService::Apns, "apns-token"),
        (PushService::Apns, "abcd"),
        (PushService::Fcm, "fcm token with spaces"),
    ] {
        assert!(
            matches!(
                f.server
                    .register(service, conversations_register(token))
                    .await,
                Err(CommandError::BadToken)
            ),
            "{service} {token}"
        );
    }
    assert!(f.store.registrations().is_empty());
}

#[tokio::test]
async fn a_database_failure_is_an_internal_error() {
    let f = fixture(WakeOutcome::Accepted);
    let r = f
        .server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    f.store.set_unavailable(true);
    assert_eq!(
        f.server
            .publish(publish(r.node.as_str(), r.secret.expose()))
            .await,
        PublishOutcome::InternalError
    );
    assert!(matches!(
        f.server
            .register(PushService::Fcm, conversations_register("tok-1"))
            .await,
        Err(CommandError::Store(StoreError::Unavailable(_)))
    ));
}

#[tokio::test]
async fn an_account_registers_at_most_its_limit_of_devices() {
    let mut f = fixture(WakeOutcome::Accepted);
    f.server = AppServer::new(
        f.store.clone(),
        HashMap::new(),
        Arc::new(FixedClock::new(1_700_000_000_000)),
    )
    .with_max_devices_per_account(3);
    let android_ids = ["a1", "a2", "a3", "a4"];
    let register = |android_id: &'static str, bare_jid: &'static str| RegisterCommand {
        bare_jid,
        domain: "jabber.de",
        token: Some("tok"),
        android_id: Some(android_id),
        ..RegisterCommand::default()
    };
    for id in &android_ids[..3] {
        f.server
            .register(PushService::Fcm, register(id, "xiaomia1@jabber.de"))
            .await
            .unwrap();
    }
    let refused = f
        .server
        .register(PushService::Fcm, register("a4", "xiaomia1@jabber.de"))
        .await;
    assert!(
        matches!(refused, Err(CommandError::TooManyDevices(3))),
        "{refused:?}"
    );
    assert_eq!(f.store.registrations().len(), 3);

    // Devices already registered keep registering (Conversations does on every connect).
    let again = f
        .server
        .register(PushService::Fcm, register("a1", "xiaomia1@jabber.de"))
        .await;
    assert!(again.is_ok(), "{again:?}");
    // Another account is not affected.
    f.server
        .register(PushService::Fcm, register("a4", "other@jabber.de"))
        .await
        .unwrap();
    // A device that leaves makes room.
    f.server
        .unregister(PushService::Fcm, register("a2", "xiaomia1@jabber.de"))
        .await
        .unwrap();
    f.server
        .register(PushService::Fcm, register("a4", "xiaomia1@jabber.de"))
        .await
        .unwrap();
    assert_eq!(f.store.registrations().len(), 4);
}

#[tokio::test]
async fn a_dead_device_does_not_count_against_the_limit() {
    let f = fixture(WakeOutcome::TokenDead);
    let server = AppServer::new(
        f.store.clone(),
        HashMap::from([(PushService::Fcm, f.waker.clone() as Arc<dyn Waker>)]),
        Arc::new(FixedClock::new(1_700_000_000_000)),
    )
    .with_max_devices_per_account(1);
    let first = server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    let second_device = RegisterCommand {
        android_id: Some("ffffffffffffffff"),
        ..conversations_register("tok-2")
    };
    assert!(matches!(
        server
            .register(PushService::Fcm, second_device.clone())
            .await,
        Err(CommandError::TooManyDevices(1))
    ));
    assert_eq!(
        server
            .publish(publish(first.node.as_str(), first.secret.expose()))
            .await,
        PublishOutcome::TokenDead
    );
    server
        .register(PushService::Fcm, second_device)
        .await
        .unwrap();
}
