//! Sends spread over several HTTP/2 connections when the server allows few streams on each:
//! never more streams on one than it allows, never more connections than
//! `max_connections`, idle extra connections closed.

use std::time::Duration;

use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmConfig, FcmSender, RetryPolicy};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm};
use tokio::time::{Instant, sleep};

use super::{config, sender_with, wake};

fn no_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

/// `count` wake-ups started at once, and how long they took together.
async fn burst(sender: &FcmSender, count: usize) -> (Vec<WakeOutcome>, Duration) {
    let started = Instant::now();
    let outcomes = futures::future::join_all(
        (0..count).map(|n| async move { wake(sender, &format!("t{n}")).await }),
    )
    .await;
    (outcomes, started.elapsed())
}

fn all_accepted(outcomes: &[WakeOutcome]) -> bool {
    outcomes
        .iter()
        .all(|outcome| *outcome == WakeOutcome::Accepted)
}

#[tokio::test]
async fn a_burst_beyond_one_connection_s_streams_spreads_over_several() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_max_concurrent_streams(10);
    let sender = sender_with(&fake, &config(&fake)).with_retry_policy(no_retries());
    // The token first, so the burst measures the sends alone.
    assert_eq!(wake(&sender, "warm").await, WakeOutcome::Accepted);
    fake.set_default_answer(Answer::success().after(Duration::from_millis(100)));

    let (outcomes, took) = burst(&sender, 100).await;
    assert!(all_accepted(&outcomes), "{outcomes:?}");
    // Ten at a time on one connection would take ten rounds of 100 ms, a whole second.
    assert!(took < Duration::from_millis(700), "{took:?}");
    assert!(fake.send_connections() > 1, "{}", fake.send_connections());
    assert!(
        fake.max_sends_per_connection() <= 10,
        "{}",
        fake.max_sends_per_connection()
    );
    assert!(fake.max_in_flight() > 50, "{}", fake.max_in_flight());
}

#[tokio::test]
async fn a_server_allowing_one_stream_still_gets_every_send() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_max_concurrent_streams(1);
    let config = FcmConfig {
        max_connections: 4,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config).with_retry_policy(no_retries());
    fake.set_default_answer(Answer::success().after(Duration::from_millis(20)));

    // Cold: no token and no connection yet when all 30 start.
    let (outcomes, _) = burst(&sender, 30).await;
    assert!(all_accepted(&outcomes), "{outcomes:?}");
    assert_eq!(fake.accepted_count(), 30);
    assert_eq!(fake.send_requests(), 30, "each sent once");
    assert_eq!(fake.max_sends_per_connection(), 1);
    assert!(
        (2..=4).contains(&fake.max_open_send_connections()),
        "{}",
        fake.max_open_send_connections()
    );
}

#[tokio::test]
async fn connections_stay_within_the_limit_and_idle_extra_ones_close() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    fake.set_max_concurrent_streams(5);
    let config = FcmConfig {
        max_connections: 3,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config)
        .with_retry_policy(no_retries())
        .with_idle_connection_timeout(Duration::from_millis(200));
    assert_eq!(wake(&sender, "warm").await, WakeOutcome::Accepted);
    fake.set_default_answer(Answer::success().after(Duration::from_millis(50)));

    // 40 sends, 15 streams: the rest wait their turn rather than fail.
    let (outcomes, _) = burst(&sender, 40).await;
    assert!(all_accepted(&outcomes), "{outcomes:?}");
    assert_eq!(fake.max_open_send_connections(), 3);
    assert_eq!(fake.send_connections(), 3);
    assert!(fake.max_sends_per_connection() <= 5);
    assert_eq!(fake.open_send_connections(), 3);

    // The two extra ones carried nothing for the idle time; the first stays.
    sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.open_send_connections(), 1);
    assert_eq!(wake(&sender, "later").await, WakeOutcome::Accepted);
    assert_eq!(
        fake.send_connections(),
        3,
        "the first connection carried it"
    );
}

#[tokio::test]
async fn the_defaults_keep_a_thousand_sends_in_flight_on_fcm_s_hundred_streams() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    // As Google's FCM endpoint.
    fake.set_max_concurrent_streams(100);
    let sender = sender_with(&fake, &config(&fake)).with_retry_policy(no_retries());
    assert_eq!(wake(&sender, "warm").await, WakeOutcome::Accepted);
    // Long enough that every send is out before the first is answered, even in a debug
    // build on a busy machine, where sending 1000 takes a few hundred ms of CPU.
    let latency = Duration::from_secs(1);
    fake.set_default_answer(Answer::success().after(latency));

    let (outcomes, took) = burst(&sender, 1000).await;
    assert!(all_accepted(&outcomes), "{outcomes:?}");
    assert!(fake.max_in_flight() > 900, "{}", fake.max_in_flight());
    assert!(fake.max_sends_per_connection() <= 100);
    assert!(
        (10..=16).contains(&fake.send_connections()),
        "{}",
        fake.send_connections()
    );
    // At the old 64 in flight, 1000 sends of 1 s took 16 s.
    assert!(took < 3 * latency, "{took:?}");
}
