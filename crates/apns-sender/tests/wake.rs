//! `ApnsSender` against the fake APNs: a wake-up in, the request Apple would see and a
//! `WakeOutcome` out.

use std::sync::Arc;
use std::time::Duration;

use pushgate_apns::{
    ApnsConfig, ApnsSender, PayloadKind, RetryPolicy, SenderOptions, SigningKey, TlsRoots,
};
use pushgate_core::clock::FixedClock;
use pushgate_core::{DeviceHash, PushService, WakeOutcome, WakeRequest, Waker as _};
use pushgate_testkit::fake_apns::{
    ApnsAnswer, FAKE_CA_PEM, FAKE_KEY_ID, FAKE_KEY_P8, FAKE_TEAM_ID, FAKE_TOPIC, FakeApns,
    UNKNOWN_KEY_P8,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::json;

const TOKEN: &str = "5e1ec7ed00000000000000000000000000000000000000000000000000000001";
const HASH: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";
/// A minute of the sender's clock.
const MINUTE_MS: i64 = 60_000;

fn device() -> DeviceHash {
    DeviceHash::from_hex(HASH).expect("valid hash")
}

fn config(fake: &FakeApns) -> ApnsConfig {
    ApnsConfig {
        key_id: FAKE_KEY_ID.into(),
        team_id: FAKE_TEAM_ID.into(),
        topic: FAKE_TOPIC.into(),
        api_url: Some(fake.base_url()),
        request_deadline: Duration::from_secs(3),
        ..ApnsConfig::default()
    }
}

fn now_ms() -> i64 {
    pushgate_core::Clock::now(&pushgate_core::SystemClock)
}

fn sender(config: &ApnsConfig, key: &str, clock: Arc<FixedClock>, roots: TlsRoots) -> ApnsSender {
    let key = SigningKey::from_pem(key, FAKE_KEY_ID, FAKE_TEAM_ID).expect("usable key");
    ApnsSender::with_options(
        config,
        key,
        SenderOptions {
            clock,
            tls_roots: roots,
        },
    )
    .expect("sender")
    .with_retry_policy(RetryPolicy {
        max_attempts: 4,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    })
}

fn plain(fake: &FakeApns) -> (ApnsSender, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(now_ms()));
    let sender = sender(
        &config(fake),
        FAKE_KEY_P8,
        Arc::clone(&clock),
        TlsRoots::Platform,
    );
    (sender, clock)
}

async fn wake(sender: &ApnsSender, token: &str, device: Option<&DeviceHash>) -> WakeOutcome {
    sender
        .wake(WakeRequest {
            service: PushService::Apns,
            token,
            device,
        })
        .await
}

#[tokio::test]
async fn a_wake_up_carries_apple_s_headers_a_verified_token_and_the_app_s_payload() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, clock) = plain(&fake);
    assert_eq!(
        wake(&sender, TOKEN, Some(&device())).await,
        WakeOutcome::Accepted
    );
    let request = &fake.accepted()[0];
    assert_eq!(request.token, TOKEN);
    let jwt = request.jwt.as_ref().expect("a provider token");
    assert_eq!(
        (jwt.kid.as_str(), jwt.iss.as_str()),
        (FAKE_KEY_ID, FAKE_TEAM_ID)
    );
    assert_eq!(
        jwt.iat,
        u64::try_from(pushgate_core::Clock::now(&*clock) / 1000).expect("after 1970")
    );
    assert_eq!(request.topic.as_deref(), Some(FAKE_TOPIC));
    assert_eq!(request.push_type.as_deref(), Some("alert"));
    assert_eq!(request.priority.as_deref(), Some("10"));
    assert_eq!(request.collapse_id.as_deref(), Some(&HASH[..6]));
    let expiration: i64 = request
        .expiration
        .as_deref()
        .expect("set")
        .parse()
        .expect("secs");
    assert_eq!(
        expiration,
        pushgate_core::Clock::now(&*clock) / 1000 + 86_400
    );
    assert_eq!(
        request.json,
        Some(
            json!({"aps": {"alert": {"title": "New message"}, "mutable-content": 1, "sound": "default"}})
        )
    );
    // No device named: no collapse id.
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    assert_eq!(fake.accepted()[1].collapse_id, None);
}

#[tokio::test]
async fn a_silent_app_sends_background_pushes_at_priority_5_with_its_extra_keys() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut config = config(&fake);
    config.payload = PayloadKind::Silent;
    config.expiration = Duration::ZERO;
    config.collapse = false;
    config
        .extra
        .insert("knownGoodBuildNumber".into(), json!(412));
    let clock = Arc::new(FixedClock::new(now_ms()));
    let sender = sender(&config, FAKE_KEY_P8, clock, TlsRoots::Platform);
    assert_eq!(
        wake(&sender, TOKEN, Some(&device())).await,
        WakeOutcome::Accepted
    );
    let request = &fake.accepted()[0];
    assert_eq!(request.push_type.as_deref(), Some("background"));
    assert_eq!(request.priority.as_deref(), Some("5"));
    assert_eq!(request.expiration.as_deref(), Some("0"));
    assert_eq!(request.collapse_id, None);
    assert_eq!(
        request.json,
        Some(json!({"aps": {"content-available": 1}, "knownGoodBuildNumber": 412}))
    );
}

#[tokio::test]
async fn over_tls_with_alpn_h2_it_works_the_same() {
    let fake = FakeApns::start_tls().await.expect("fake APNs over TLS");
    let ca = CertificateDer::from_pem_slice(FAKE_CA_PEM.as_bytes()).expect("the fake's CA");
    let clock = Arc::new(FixedClock::new(now_ms()));
    let sender = sender(&config(&fake), FAKE_KEY_P8, clock, TlsRoots::Only(vec![ca]));
    assert_eq!(
        wake(&sender, TOKEN, Some(&device())).await,
        WakeOutcome::Accepted
    );
    assert_eq!(fake.accepted().len(), 1);
}

#[tokio::test]
async fn one_token_serves_every_connection_and_is_signed_anew_at_fifty_minutes() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, clock) = plain(&fake);
    let sender = Arc::new(sender);
    let wakes = (0..50).map(|n| {
        let sender = Arc::clone(&sender);
        async move { wake(&sender, &format!("{n:064x}"), None).await }
    });
    let outcomes = futures::future::join_all(wakes).await;
    assert!(
        outcomes.iter().all(|o| *o == WakeOutcome::Accepted),
        "{outcomes:?}"
    );
    assert_eq!(fake.distinct_jwts(), 1);
    // 49 minutes on: the same token. 50: a new one, which APNs takes (its 20-minute rule holds).
    clock.advance(49 * MINUTE_MS);
    fake.set_clock_offset(Duration::from_secs(49 * 60));
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    assert_eq!(fake.distinct_jwts(), 1);
    clock.advance(MINUTE_MS);
    fake.set_clock_offset(Duration::from_secs(50 * 60));
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    assert_eq!(fake.distinct_jwts(), 2);
    assert!(
        fake.requests().iter().all(|r| r.status == Some(200)),
        "no TooManyProviderTokenUpdates"
    );
}

#[tokio::test]
async fn an_expired_token_is_signed_anew_only_when_it_may_be() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, clock) = plain(&fake);
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    // Apple's clock says the token is 61 minutes old, ours that it is new: the clocks
    // disagree, a new token would not help, and none is signed.
    fake.set_clock_offset(Duration::from_secs(61 * 60));
    match wake(&sender, TOKEN, None).await {
        WakeOutcome::Transient(reason) => assert!(reason.contains("clock"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.distinct_jwts(), 1);
    // Thirty minutes on by our clock: the token may be replaced, and the retry goes through.
    clock.advance(30 * MINUTE_MS);
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    assert_eq!(fake.distinct_jwts(), 2);
}

/// What a row of the classification table expects of the outcome.
type Expect = fn(&WakeOutcome) -> bool;

#[tokio::test]
async fn apple_s_answers_are_classified_as_the_table_says() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, _) = plain(&fake);
    let rows: Vec<(ApnsAnswer, Expect, usize)> = vec![
        (
            ApnsAnswer::Unregistered {
                timestamp_ms: 1_700_000_000_000,
            },
            |o| *o == WakeOutcome::TokenDead,
            1,
        ),
        (
            ApnsAnswer::BadDeviceToken,
            |o| *o == WakeOutcome::TokenDead,
            1,
        ),
        (
            ApnsAnswer::DeviceTokenNotForTopic,
            |o| *o == WakeOutcome::TokenDead,
            1,
        ),
        (
            ApnsAnswer::TooManyRequests,
            |o| matches!(o, WakeOutcome::Transient(_)),
            1,
        ),
        (
            ApnsAnswer::Status(400, "BadPriority".into()),
            |o| matches!(o, WakeOutcome::Rejected(_)),
            1,
        ),
        (
            ApnsAnswer::Status(413, "PayloadTooLarge".into()),
            |o| matches!(o, WakeOutcome::Rejected(_)),
            1,
        ),
    ];
    for (n, (answer, expected, requests)) in rows.into_iter().enumerate() {
        let token = format!("{n:064x}");
        fake.script(&token, [answer.clone()]);
        let outcome = wake(&sender, &token, None).await;
        assert!(expected(&outcome), "{answer:?}: {outcome:?}");
        assert_eq!(fake.requests_for(&token).len(), requests, "{answer:?}");
    }
    // 500 and 503 are retried, and the retry is taken.
    for (n, answer) in [
        ApnsAnswer::InternalServerError,
        ApnsAnswer::ServiceUnavailable,
    ]
    .into_iter()
    .enumerate()
    {
        let token = format!("{:064x}", 100 + n);
        fake.script(&token, [answer.clone(), answer]);
        assert_eq!(wake(&sender, &token, None).await, WakeOutcome::Accepted);
        assert_eq!(fake.requests_for(&token).len(), 3);
    }
}

#[tokio::test]
async fn a_storm_of_503s_is_transient_within_the_deadline() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, _) = plain(&fake);
    fake.set_default_answer(ApnsAnswer::ServiceUnavailable);
    let started = std::time::Instant::now();
    assert!(matches!(
        wake(&sender, TOKEN, None).await,
        WakeOutcome::Transient(_)
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.requests_for(TOKEN).len(), 4, "every try of the policy");
}

#[tokio::test]
async fn after_shutdown_the_retry_goes_out_on_a_new_connection() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, _) = plain(&fake);
    fake.script(TOKEN, [ApnsAnswer::Shutdown]);
    assert_eq!(wake(&sender, TOKEN, None).await, WakeOutcome::Accepted);
    let requests = fake.requests_for(TOKEN);
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0].connection, requests[1].connection);
}

#[tokio::test]
async fn no_answer_is_transient_at_the_deadline() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut config = config(&fake);
    config.request_deadline = Duration::from_millis(300);
    let clock = Arc::new(FixedClock::new(now_ms()));
    let sender = sender(&config, FAKE_KEY_P8, clock, TlsRoots::Platform);
    fake.set_default_answer(ApnsAnswer::Never);
    match wake(&sender, TOKEN, None).await {
        WakeOutcome::Transient(reason) => assert!(reason.contains("300 ms"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_apple_does_not_know_is_the_operator_s_trouble_not_the_device_s() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let clock = Arc::new(FixedClock::new(now_ms()));
    let sender = sender(&config(&fake), UNKNOWN_KEY_P8, clock, TlsRoots::Platform);
    match wake(&sender, TOKEN, None).await {
        WakeOutcome::Transient(reason) => {
            assert!(reason.contains("InvalidProviderToken"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests_for(TOKEN).len(), 1, "not retried");
}

#[tokio::test]
async fn a_token_that_cannot_be_apple_s_never_leaves() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, _) = plain(&fake);
    let huge = "a".repeat(10_240);
    for token in [
        "not-hex-at-all",
        &TOKEN[..62],
        huge.as_str(),
        "../../3/device/x",
    ] {
        assert!(
            matches!(wake(&sender, token, None).await, WakeOutcome::Rejected(_)),
            "{token}"
        );
    }
    let fcm = sender
        .wake(WakeRequest {
            service: PushService::Fcm,
            token: TOKEN,
            device: None,
        })
        .await;
    assert!(matches!(fcm, WakeOutcome::Transient(_)));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_wake_up_in_flight_stays_small() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (sender, _) = plain(&fake);
    let device = device();
    let wake_up = sender.wake(WakeRequest {
        service: PushService::Apns,
        token: TOKEN,
        device: Some(&device),
    });
    // FCM's is held to 1 KiB: a wake-up in flight is this, a thousand times over.
    let size = std::mem::size_of_val(&*wake_up);
    eprintln!("an APNs wake-up in flight: {size} bytes");
    assert!(size <= 1024, "{size} bytes");
}
