//! What reaches FCM: the exact message, the URL, the bearer token.

use std::path::PathBuf;
use std::time::Duration;

use pushgate_core::{PushService, WakeOutcome, WakeRequest, Waker as _};
use pushgate_fcm::{AndroidPriority, FcmConfig, FcmSender, wake_message};
use pushgate_testkit::fake_fcm::{Answer, FAKE_PROJECT_ID, FakeFcm};
use serde_json::json;

use super::{HASH, config, device, sender_with, start, wake};

#[tokio::test]
async fn a_wake_up_is_the_exact_message_with_collapse_key_and_high_priority() {
    let (fake, sender) = start().await;
    assert_eq!(
        sender.send_url(),
        format!(
            "{}/v1/projects/{FAKE_PROJECT_ID}/messages:send",
            fake.api_url()
        )
    );
    assert_eq!(wake(&sender, "fcm-token-1").await, WakeOutcome::Accepted);

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].body,
        json!({"message": {
            "token": "fcm-token-1",
            "android": {"collapse_key": "ec1649", "priority": "high"},
            "data": {"account": HASH},
        }})
    );
    assert_eq!(messages[0].collapse_key.as_deref(), Some("ec1649"));
    assert_eq!(messages[0].priority.as_deref(), Some("high"));
}

#[tokio::test]
async fn without_collapse_and_at_normal_priority_only_the_priority_is_in_android() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        collapse: false,
        priority: AndroidPriority::Normal,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    assert_eq!(wake(&sender, "fcm-token-2").await, WakeOutcome::Accepted);

    let messages = fake.messages();
    assert_eq!(
        messages[0].body,
        json!({"message": {
            "token": "fcm-token-2",
            "android": {"priority": "normal"},
            "data": {"account": HASH},
        }})
    );
    assert_eq!(
        messages[0].body,
        serde_json::from_slice::<serde_json::Value>(&wake_message(
            "fcm-token-2",
            Some(&device()),
            false,
            AndroidPriority::Normal
        ))
        .expect("JSON")
    );
    assert_eq!(messages[0].collapse_key, None);
}

#[tokio::test]
async fn the_key_file_from_the_settings_is_used() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let key_file = fake.write_service_account().expect("key file");
    let config = FcmConfig {
        service_account_file: Some(PathBuf::from(key_file.path())),
        ..config(&fake)
    };
    let sender = FcmSender::from_config(&config).expect("sender");
    assert_eq!(wake(&sender, "fcm-token-3").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.accepted_count(), 1);
}

#[tokio::test]
async fn many_wake_ups_share_one_token_and_run_side_by_side() {
    let (fake, sender) = start().await;
    fake.set_default_answer(Answer::success().after(Duration::from_millis(20)));
    let wakes = (0..40).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("token-{n}")).await }
    });
    let outcomes = futures::future::join_all(wakes).await;
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert_eq!(fake.token_requests(), 1, "one grant for all");
    assert_eq!(fake.send_requests(), 40);
    assert_eq!(fake.accepted_count(), 40);
}

#[tokio::test]
async fn apns_tokens_are_not_sent_to_fcm() {
    let (fake, sender) = start().await;
    let outcome = sender
        .wake(WakeRequest {
            service: PushService::Apns,
            token: "apns-token",
            device: Some(&device()),
        })
        .await;
    assert!(matches!(outcome, WakeOutcome::Transient(_)), "{outcome:?}");
    assert_eq!(fake.token_requests() + fake.send_requests(), 0);
}
