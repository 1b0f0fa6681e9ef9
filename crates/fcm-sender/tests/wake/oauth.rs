//! The OAuth2 side: one grant for many sends, refresh before expiry, a new token after a 401,
//! and every token-endpoint failure as a transient outcome.

use std::time::Duration;

use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmConfig, FcmSender, ServiceAccount};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm};
use tokio::time::{Instant, sleep};

use super::{config, is_transient, quick_retries, start, wake};

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_send_retried_once() {
    let (fake, sender) = start().await;
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    fake.revoke_access_tokens();
    assert_eq!(wake(&sender, "b").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(
        fake.sends_to("b"),
        1,
        "the 401 comes before the message is read"
    );
    assert_eq!(fake.send_requests(), 3);
    // The new token is cached again.
    assert_eq!(wake(&sender, "c").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_second_401_after_a_fresh_token_is_transient() {
    let (fake, sender) = start().await;
    fake.script("x", [Answer::unauthenticated(), Answer::unauthenticated()]);
    let outcome = wake(&sender, "x").await;
    assert!(is_transient(&outcome), "{outcome:?}");
    assert_eq!(fake.sends_to("x"), 2, "one retry only");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn the_token_is_refreshed_when_it_nears_expiry() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_token_lifetime(Duration::from_secs(2));
    let sender =
        super::sender_with(&fake, &config(&fake)).with_token_refresh_margin(Duration::from_secs(1));
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 1, "cached while far from expiry");

    // Into the last second: one caller refreshes while the others keep the valid token.
    sleep(Duration::from_millis(1100)).await;
    fake.set_token_delay(Duration::from_millis(300));
    let started = Instant::now();
    let outcomes = futures::future::join_all((0..10).map(|_| wake(&sender, "b"))).await;
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert_eq!(fake.token_requests(), 2, "exactly one refresh");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.sends_to("b"), 10);
}

#[tokio::test]
async fn an_expired_token_is_fetched_anew() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_token_lifetime(Duration::from_secs(2));
    let sender =
        super::sender_with(&fake, &config(&fake)).with_token_refresh_margin(Duration::ZERO);
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    sleep(Duration::from_millis(1100)).await;
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 1, "1 s of life is still enough");
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.send_requests(), 3, "no 401 on the way");
}

#[tokio::test]
async fn a_grant_signed_with_an_unknown_key_is_transient_and_nothing_is_sent() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let account =
        ServiceAccount::from_json(&fake.service_account_json_with_unknown_key()).expect("key");
    let sender = FcmSender::new(&config(&fake), account).expect("sender");
    let outcome = wake(&sender, "a").await;
    let WakeOutcome::Transient(text) = outcome else {
        panic!("OAuth trouble must be transient");
    };
    assert!(text.contains("invalid_grant"), "{text}");
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.send_requests(), 0);
}

#[tokio::test]
async fn a_refused_grant_is_transient_and_the_next_wake_up_tries_again() {
    let (fake, sender) = start().await;
    fake.refuse_grants(true);
    assert!(is_transient(&wake(&sender, "a").await));
    assert_eq!(fake.send_requests(), 0);
    fake.refuse_grants(false);
    assert_eq!(wake(&sender, "a").await, WakeOutcome::Accepted);
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn callers_waiting_on_a_failing_grant_share_its_failure() {
    let (fake, sender) = start().await;
    fake.refuse_grants(true);
    fake.set_token_delay(Duration::from_millis(100));
    let outcomes = futures::future::join_all((0..10).map(|_| wake(&sender, "a"))).await;
    assert!(outcomes.iter().all(is_transient));
    assert_eq!(
        fake.token_requests(),
        1,
        "no stampede on the token endpoint"
    );
}

#[tokio::test]
async fn a_token_endpoint_that_does_not_answer_is_transient_at_the_deadline() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_token_delay(Duration::from_secs(30));
    let config = FcmConfig {
        request_deadline: Duration::from_millis(300),
        ..config(&fake)
    };
    let sender = super::sender_with(&fake, &config);
    let started = Instant::now();
    assert!(is_transient(&wake(&sender, "a").await));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_transient() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_uri = format!("http://{}/token", closed.local_addr().expect("addr"));
    drop(closed);
    let mut json: serde_json::Value =
        serde_json::from_str(&fake.service_account_json()).expect("JSON");
    json["token_uri"] = dead_uri.into();
    let account = ServiceAccount::from_json(&json.to_string()).expect("key");
    let sender = FcmSender::new(&config(&fake), account)
        .expect("sender")
        .with_retry_policy(quick_retries());
    assert!(is_transient(&wake(&sender, "a").await));
    assert_eq!(fake.send_requests(), 0);
}
