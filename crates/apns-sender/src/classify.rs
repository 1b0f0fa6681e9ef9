//! What an APNs answer means (docs/apns.md has the table): dead tokens, the operator's
//! trouble, Apple's trouble, and pushgate's own mistakes, each answered so that the user's
//! server keeps a registration unless its token is dead.

use std::time::Duration;

use pushgate_core::WakeOutcome;

/// What to do after one answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Final: return this.
    Done(WakeOutcome),
    /// 403 `ExpiredProviderToken`: sign a new token (if it may be) and try once more.
    ExpiredToken,
    /// Worth another try after a pause (and after `retry_after`, when APNs named one).
    Retry {
        /// For logs and for the outcome when no retry is left.
        reason: String,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

/// Who an answer that is not a success blames: the `outcome` label of
/// `pushgate_upstream_requests_total`, and how loudly it is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blame {
    /// Accepted.
    None,
    /// The device token is dead.
    Token,
    /// The operator's credentials or setup (key, team, topic, environment).
    Credentials,
    /// APNs asks for fewer requests.
    RateLimit,
    /// APNs' own trouble (5xx, shutting down).
    Apple,
    /// A request APNs should never have been sent: pushgate's fault.
    Pushgate,
}

impl Blame {
    pub(crate) fn outcome_label(self) -> &'static str {
        match self {
            Self::None => "success",
            Self::Token => "dead_token",
            Self::Credentials => "auth_error",
            Self::RateLimit => "rate_limited",
            Self::Apple => "server_error",
            Self::Pushgate => "rejected",
        }
    }
}

/// The longest `reason` kept from a body (Apple's are short words).
const MAX_REASON_CHARS: usize = 40;

/// Classifies an answer: its status, `Retry-After` and body (`{"reason":…}`).
pub(crate) fn classify_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> (Verdict, Blame) {
    if (200..300).contains(&status) {
        return (Verdict::Done(WakeOutcome::Accepted), Blame::None);
    }
    let reason = reason(body);
    let text = format!(
        "APNs {} (HTTP {status})",
        reason.as_deref().unwrap_or("error")
    );
    let done = |outcome| Verdict::Done(outcome);
    match (status, reason.as_deref()) {
        // Any 410 (`Unregistered`, `ExpiredToken`): the app is gone from the device.
        (410, _) | (400, Some("BadDeviceToken" | "DeviceTokenNotForTopic")) => {
            (done(WakeOutcome::TokenDead), Blame::Token)
        }
        (403, Some("ExpiredProviderToken")) => (Verdict::ExpiredToken, Blame::Credentials),
        // The key, the team, a certificate, the topic: the operator must act; the device is fine.
        (403, _) | (400, Some("TopicDisallowed" | "BadTopic" | "MissingTopic")) => {
            (done(WakeOutcome::Transient(text)), Blame::Credentials)
        }
        // Per device (`TooManyRequests`) or per token (`TooManyProviderTokenUpdates`): another
        // try at once would only add to it.
        (429, _) => (done(WakeOutcome::Transient(text)), Blame::RateLimit),
        (500..=599, _) => (
            Verdict::Retry {
                reason: text,
                retry_after,
            },
            Blame::Apple,
        ),
        // 400s, 404 BadPath, 405, 413 PayloadTooLarge: a request pushgate got wrong.
        _ => (done(WakeOutcome::Rejected(text)), Blame::Pushgate),
    }
}

/// The `reason` of an error body, if it is one of Apple's words (letters only).
fn reason(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let reason = value.get("reason")?.as_str()?;
    let plain = !reason.is_empty()
        && reason.len() <= MAX_REASON_CHARS
        && reason.bytes().all(|b| b.is_ascii_alphabetic());
    plain.then(|| reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, reason: &str) -> (Verdict, Blame) {
        classify_answer(
            status,
            None,
            format!(r#"{{"reason":"{reason}"}}"#).as_bytes(),
        )
    }

    fn outcome(status: u16, reason: &str) -> WakeOutcome {
        match answer(status, reason).0 {
            Verdict::Done(outcome) => outcome,
            other => panic!("{status} {reason}: {other:?}"),
        }
    }

    #[test]
    fn dead_tokens_are_dead() {
        let unregistered = classify_answer(
            410,
            None,
            br#"{"reason":"Unregistered","timestamp":1700000000000}"#,
        );
        assert_eq!(
            unregistered,
            (Verdict::Done(WakeOutcome::TokenDead), Blame::Token)
        );
        assert_eq!(outcome(400, "BadDeviceToken"), WakeOutcome::TokenDead);
        assert_eq!(
            outcome(400, "DeviceTokenNotForTopic"),
            WakeOutcome::TokenDead
        );
        assert_eq!(outcome(410, "ExpiredToken"), WakeOutcome::TokenDead);
    }

    #[test]
    fn the_operator_s_and_apple_s_trouble_is_never_the_device_s() {
        for (status, reason) in [
            (403, "InvalidProviderToken"),
            (403, "MissingProviderToken"),
            (403, "BadCertificate"),
            (403, "BadCertificateEnvironment"),
            (403, "Forbidden"),
            (400, "TopicDisallowed"),
            (429, "TooManyProviderTokenUpdates"),
            (429, "TooManyRequests"),
        ] {
            assert!(
                matches!(outcome(status, reason), WakeOutcome::Transient(ref text) if text.contains(reason)),
                "{status} {reason}"
            );
        }
        assert_eq!(answer(403, "ExpiredProviderToken").0, Verdict::ExpiredToken);
        for (status, reason) in [
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            let (verdict, blame) = answer(status, reason);
            assert!(
                matches!(verdict, Verdict::Retry { .. }),
                "{status} {reason}"
            );
            assert_eq!(blame, Blame::Apple);
        }
    }

    #[test]
    fn anything_else_is_pushgate_s_fault_and_never_a_dead_token() {
        for (status, reason) in [
            (400, "BadCollapseId"),
            (400, "BadExpirationDate"),
            (400, "BadPriority"),
            (400, "PayloadEmpty"),
            (404, "BadPath"),
            (405, "MethodNotAllowed"),
            (413, "PayloadTooLarge"),
            (418, "Teapot"),
        ] {
            let (verdict, blame) = answer(status, reason);
            assert!(
                matches!(verdict, Verdict::Done(WakeOutcome::Rejected(_))),
                "{status} {reason}"
            );
            assert_eq!(blame, Blame::Pushgate);
        }
    }

    #[test]
    fn a_reason_that_is_not_one_of_apple_s_words_is_not_repeated() {
        let (verdict, _) = classify_answer(400, None, br#"{"reason":"<script>a1b2c3</script>"}"#);
        assert_eq!(
            verdict,
            Verdict::Done(WakeOutcome::Rejected("APNs error (HTTP 400)".into()))
        );
        let (verdict, _) = classify_answer(503, None, b"not json");
        assert!(
            matches!(verdict, Verdict::Retry { ref reason, .. } if reason == "APNs error (HTTP 503)")
        );
    }
}
