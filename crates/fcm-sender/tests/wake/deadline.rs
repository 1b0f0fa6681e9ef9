//! One deadline per wake-up, retries and waiting included; the concurrency limit.

use std::time::Duration;

use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmConfig, RetryPolicy};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};
use tokio::time::Instant;

use super::{config, is_transient, sender_with, start, wake};

async fn start_with_deadline(deadline: Duration) -> (FakeFcm, pushgate_fcm::FcmSender) {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        request_deadline: deadline,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    (fake, sender)
}

#[tokio::test]
async fn retry_after_within_the_deadline_is_honoured() {
    let (fake, sender) = start().await;
    // Google's captured 429 carries `Retry-After: 1`.
    fake.script("q", [Answer::error(FcmErrorCode::QuotaExceeded)]);
    let started = Instant::now();
    assert_eq!(wake(&sender, "q").await, WakeOutcome::Accepted);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(fake.sends_to("q"), 2);
}

#[tokio::test]
async fn retry_after_past_the_deadline_gives_up_at_once() {
    let (fake, sender) = start_with_deadline(Duration::from_secs(2)).await;
    let in_a_minute =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    fake.script(
        "q1",
        [Answer::error(FcmErrorCode::QuotaExceeded).with_retry_after(Some("30"))],
    );
    fake.script(
        "q2",
        [Answer::error(FcmErrorCode::QuotaExceeded).with_retry_after(Some(&in_a_minute))],
    );
    for token in ["q1", "q2"] {
        let started = Instant::now();
        let outcome = wake(&sender, token).await;
        let took = started.elapsed();
        let WakeOutcome::Transient(text) = outcome else {
            panic!("quota is transient");
        };
        assert!(text.contains("QUOTA_EXCEEDED"), "{text}");
        assert!(took < Duration::from_millis(500), "{token} took {took:?}");
        assert_eq!(fake.sends_to(token), 1);
    }
}

#[tokio::test]
async fn no_retry_is_started_in_the_last_tenth_of_the_deadline() {
    // A retry after the 10 s FCM asks for would leave 0.5 s, less than a tenth of 10.5 s.
    let (fake, sender) = start_with_deadline(Duration::from_millis(10_500)).await;
    fake.script(
        "late",
        [Answer::error(FcmErrorCode::QuotaExceeded).with_retry_after(Some("10"))],
    );
    let started = Instant::now();
    let WakeOutcome::Transient(text) = wake(&sender, "late").await else {
        panic!("quota is transient");
    };
    assert!(text.contains("no time left"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(fake.sends_to("late"), 1);
}

#[tokio::test]
async fn a_fake_that_never_answers_is_transient_at_the_deadline() {
    let (fake, sender) = start_with_deadline(Duration::from_millis(300)).await;
    fake.script("silent", [Answer::never()]);
    let started = Instant::now();
    let outcome = wake(&sender, "silent").await;
    let took = started.elapsed();
    assert!(is_transient(&outcome), "{outcome:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[tokio::test]
async fn backoff_never_runs_past_the_deadline() {
    let (fake, sender) = start_with_deadline(Duration::from_millis(500)).await;
    let sender = sender.with_retry_policy(RetryPolicy {
        max_attempts: 100,
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
    });
    fake.set_default_answer(Answer::error(FcmErrorCode::Unavailable));
    let started = Instant::now();
    let outcome = wake(&sender, "down").await;
    let took = started.elapsed();
    let WakeOutcome::Transient(text) = outcome else {
        panic!("UNAVAILABLE is transient");
    };
    assert!(text.contains("no time left"), "{text}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(fake.sends_to("down") >= 2);
}

#[tokio::test]
async fn an_unreachable_fcm_is_retried_then_transient() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = FcmConfig {
        api_url: format!("http://{}", closed.local_addr().expect("addr")),
        ..config(&fake)
    };
    drop(closed);
    let sender = sender_with(&fake, &config);
    let WakeOutcome::Transient(text) = wake(&sender, "a").await else {
        panic!("a connection failure is transient");
    };
    assert!(text.contains("connect"), "{text}");
}

#[tokio::test]
async fn the_concurrency_limit_holds() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        max_concurrent: 4,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    fake.set_default_answer(Answer::success().after(Duration::from_millis(30)));
    let outcomes = futures::future::join_all((0..24).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("t{n}")).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert_eq!(fake.max_in_flight(), 4);
    assert_eq!(fake.accepted_count(), 24);
}

#[tokio::test]
async fn waiting_for_a_free_slot_counts_against_the_deadline() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        max_concurrent: 1,
        request_deadline: Duration::from_millis(300),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    // Fetch the token first so only the slot is waited for.
    assert_eq!(wake(&sender, "warm").await, WakeOutcome::Accepted);
    fake.script(
        "slow",
        [Answer::success().after(Duration::from_millis(250))],
    );
    let started = Instant::now();
    let (slow, queued) = tokio::join!(wake(&sender, "slow"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        wake(&sender, "queued").await
    });
    assert_eq!(slow, WakeOutcome::Accepted);
    // "queued" got the slot after ~150 ms of its 300 and then was sent; with a slot held
    // longer than its deadline it would time out, which the next case shows.
    assert_eq!(queued, WakeOutcome::Accepted);
    assert!(started.elapsed() < Duration::from_millis(600));

    // "stuck" holds the only slot until its deadline at 300 ms; "starved" starts at 50 ms,
    // gets the slot at 300 ms and needs 100 ms more: past its own deadline at 350 ms, which
    // it would meet if the wait for the slot were free.
    fake.script("stuck", [Answer::never()]);
    fake.script(
        "starved",
        [Answer::success().after(Duration::from_millis(100))],
    );
    let started = Instant::now();
    let (stuck, (starved, starved_took)) = tokio::join!(wake(&sender, "stuck"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        (wake(&sender, "starved").await, started.elapsed())
    });
    assert!(is_transient(&stuck));
    assert!(is_transient(&starved), "{starved:?}");
    assert!(
        starved_took >= Duration::from_millis(290) && starved_took < Duration::from_millis(600),
        "{starved_took:?}"
    );
    assert_eq!(fake.accepted_count(), 3, "warm, slow, queued");
    assert!(started.elapsed() < Duration::from_millis(800));
}

#[tokio::test]
async fn the_fake_keeps_up_with_many_parallel_wake_ups() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        max_concurrent: 200,
        request_deadline: Duration::from_secs(10),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    fake.set_default_answer(Answer::success().after(Duration::from_millis(50)));
    let started = Instant::now();
    let outcomes = futures::future::join_all((0..1000).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("t{n}")).await }
    }))
    .await;
    let took = started.elapsed();
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert_eq!(fake.accepted_count(), 1000);
    assert!(fake.max_in_flight() <= 200);
    // 1000 sends, 200 at a time, 50 ms each: 250 ms of waiting at best.
    assert!(took < Duration::from_secs(5), "{took:?}");
}
