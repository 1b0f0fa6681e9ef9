//! Every documented FCM HTTP v1 error, and answers without FCM's detail, to a `WakeOutcome`.

use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmSender, RetryPolicy};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};
use serde_json::json;

use super::{config, is_transient, sender_with, start, wake};

/// A sender that never retries, so each answer maps to an outcome on its own.
async fn start_without_retries() -> (FakeFcm, FcmSender) {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let sender = sender_with(&fake, &config(&fake)).with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    (fake, sender)
}

#[tokio::test]
async fn each_documented_error_code_gets_its_outcome() {
    let (fake, sender) = start_without_retries().await;
    for code in FcmErrorCode::ALL {
        let token = format!("token-for-{}", code.as_str());
        fake.script(&token, [Answer::error(code)]);
        let outcome = wake(&sender, &token).await;
        match code {
            FcmErrorCode::Unregistered => assert_eq!(outcome, WakeOutcome::TokenDead),
            FcmErrorCode::InvalidArgument | FcmErrorCode::SenderIdMismatch => {
                assert!(
                    matches!(&outcome, WakeOutcome::Rejected(_)),
                    "{code:?}: {outcome:?}"
                );
            }
            FcmErrorCode::QuotaExceeded
            | FcmErrorCode::Unavailable
            | FcmErrorCode::Internal
            | FcmErrorCode::ThirdPartyAuthError => {
                assert!(is_transient(&outcome), "{code:?}: {outcome:?}");
            }
        }
        // The text is for logs: it names the code and never the token.
        if let WakeOutcome::Transient(text) | WakeOutcome::Rejected(text) = &outcome {
            assert!(text.contains(code.as_str()), "{text}");
            assert!(!text.contains(&token), "{text}");
        }
        assert_eq!(fake.sends_to(&token), 1, "{code:?} is sent once");
    }
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn third_party_auth_error_is_not_a_bad_bearer_token() {
    let (fake, sender) = start().await;
    fake.script("t", [Answer::error(FcmErrorCode::ThirdPartyAuthError)]);
    assert!(is_transient(&wake(&sender, "t").await));
    // A 401 with the FcmError detail is about APNs or Web Push keys: no new token, no retry.
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.sends_to("t"), 1);
}

#[tokio::test]
async fn answers_without_fcm_detail_are_transient() {
    let (fake, sender) = start_without_retries().await;
    let permission_denied = json!({"error": {
        "code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"
    }});
    let not_found = json!({"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}});
    let cases = [
        Answer::raw(403, permission_denied.to_string()),
        Answer::raw(404, not_found.to_string()),
        Answer::raw(400, "<html>Bad Request</html>"),
        Answer::raw(500, "oops"),
        Answer::raw(502, "<html>Bad Gateway</html>"),
        Answer::raw(503, ""),
        Answer::raw(429, "{}"),
        Answer::raw(302, ""),
        Answer::raw(418, "{\"error\": 7}"),
    ];
    for (n, answer) in cases.into_iter().enumerate() {
        let token = format!("raw-{n}");
        fake.script(&token, [answer]);
        let outcome = wake(&sender, &token).await;
        assert!(is_transient(&outcome), "case {n}: {outcome:?}");
    }
}

#[tokio::test]
async fn a_message_quoting_the_token_is_redacted() {
    let (fake, sender) = start().await;
    let token = "secret-registration-token-123";
    let body = json!({"error": {
        "code": 400,
        "message": format!("The registration token is not a valid FCM registration token: {token}"),
        "status": "INVALID_ARGUMENT",
        "details": [{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": "INVALID_ARGUMENT"
        }]
    }});
    fake.script(token, [Answer::raw(400, body.to_string())]);
    let WakeOutcome::Rejected(text) = wake(&sender, token).await else {
        panic!("INVALID_ARGUMENT is a rejection");
    };
    assert!(!text.contains(token), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn unavailable_then_success_is_accepted_after_a_retry() {
    let (fake, sender) = start().await;
    fake.script(
        "flaky",
        [
            Answer::error(FcmErrorCode::Unavailable),
            Answer::error(FcmErrorCode::Internal),
        ],
    );
    assert_eq!(wake(&sender, "flaky").await, WakeOutcome::Accepted);
    assert_eq!(fake.sends_to("flaky"), 3, "two retries");
    assert_eq!(fake.accepted_count(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_attempt_limit() {
    let (fake, sender) = start().await;
    fake.set_default_answer(Answer::error(FcmErrorCode::Unavailable));
    let outcome = wake(&sender, "down").await;
    let WakeOutcome::Transient(text) = outcome else {
        panic!("UNAVAILABLE stays transient");
    };
    assert!(text.contains("UNAVAILABLE"), "{text}");
    assert_eq!(fake.sends_to("down"), 4, "RetryPolicy::max_attempts");
}

#[tokio::test]
async fn rejections_and_dead_tokens_are_never_retried() {
    let (fake, sender) = start().await;
    fake.script("dead", [Answer::error(FcmErrorCode::Unregistered)]);
    fake.script("bad", [Answer::error(FcmErrorCode::InvalidArgument)]);
    assert_eq!(wake(&sender, "dead").await, WakeOutcome::TokenDead);
    assert!(matches!(
        wake(&sender, "bad").await,
        WakeOutcome::Rejected(_)
    ));
    assert_eq!(fake.sends_to("dead"), 1);
    assert_eq!(fake.sends_to("bad"), 1);
}
