//! What an FCM HTTP v1 answer means: classified on the `FcmError` detail's `errorCode`, falling
//! back to the HTTP status (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).

use std::time::Duration;

use pushgate_core::WakeOutcome;
use serde_json::Value;

/// The `@type` of the detail that carries FCM's own error code.
const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/// The longest piece of Google's error text kept for logs.
const MAX_MESSAGE_CHARS: usize = 160;

/// What to do after one answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Final: return this.
    Done(WakeOutcome),
    /// HTTP 401 without an FCM detail: the bearer token expired or was revoked; fetch a new
    /// one and try once more.
    RefreshBearer,
    /// Worth another try after a pause (and after `retry_after`, when FCM named one).
    Retry {
        /// For logs and for the outcome when no retry is left.
        reason: String,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

/// Classifies a complete answer. `secrets` (the push token, the device hash) are cut out of
/// any text kept from the body.
pub(crate) fn classify_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Done(WakeOutcome::Accepted);
    }
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut value| value.get_mut("error").map(Value::take));
    let code = error.as_ref().and_then(fcm_error_code);
    let reason = |label: &str| {
        let text = error
            .as_ref()
            .and_then(|error| error.get("message")?.as_str())
            .map(|message| format!(": {}", redact(message, secrets)))
            .unwrap_or_default();
        format!("FCM {label} (HTTP {status}){text}")
    };
    let retry = |label: &str| Verdict::Retry {
        reason: reason(label),
        retry_after,
    };
    match code {
        Some("UNREGISTERED") => Verdict::Done(WakeOutcome::TokenDead),
        Some(code @ ("INVALID_ARGUMENT" | "SENDER_ID_MISMATCH")) => {
            Verdict::Done(WakeOutcome::Rejected(reason(code)))
        }
        Some(code @ ("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL")) => retry(code),
        // APNs or Web Push credentials in the Firebase project: an operator must fix them.
        Some(code @ ("THIRD_PARTY_AUTH_ERROR" | "UNSPECIFIED_ERROR")) => {
            Verdict::Done(WakeOutcome::Transient(reason(code)))
        }
        // No detail, or a code newer than this list: the status decides.
        _ => match status {
            401 => Verdict::RefreshBearer,
            429 | 500..=599 => retry("error"),
            _ => Verdict::Done(WakeOutcome::Transient(reason("error"))),
        },
    }
}

/// The `errorCode` of the `FcmError` entry in `error.details[]`.
fn fcm_error_code(error: &Value) -> Option<&str> {
    error
        .get("details")?
        .as_array()?
        .iter()
        .find(|detail| detail.get("@type").and_then(Value::as_str) == Some(FCM_ERROR_TYPE))?
        .get("errorCode")?
        .as_str()
}

/// Google's text, shortened, with the secrets cut out (an `INVALID_ARGUMENT` message may quote
/// the token it refused).
fn redact(message: &str, secrets: &[&str]) -> String {
    let mut text: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).chain(['…']).collect();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google_error(status: u16, code: &str) -> Vec<u8> {
        serde_json::json!({"error": {
            "code": status,
            "message": "text",
            "status": "X",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.BadRequest"},
                {"@type": FCM_ERROR_TYPE, "errorCode": code},
            ],
        }})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_detail_decides_over_the_status() {
        // A code Google might send under an unexpected status still means what it says.
        let verdict = classify_answer(400, None, &google_error(400, "UNREGISTERED"), &[]);
        assert_eq!(verdict, Verdict::Done(WakeOutcome::TokenDead));
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        let body = google_error(503, "SOMETHING_NEW");
        assert!(matches!(
            classify_answer(503, None, &body, &[]),
            Verdict::Retry { .. }
        ));
        let body = google_error(400, "SOMETHING_NEW");
        assert!(matches!(
            classify_answer(400, None, &body, &[]),
            Verdict::Done(WakeOutcome::Transient(_))
        ));
    }

    #[test]
    fn google_s_text_loses_the_token_and_is_shortened() {
        let text = redact(
            "bad token abc123\nfor ec1649ff",
            &["abc123", "ec1649ff", ""],
        );
        assert_eq!(text, "bad token [redacted] for [redacted]");
        assert_eq!(
            redact(&"x".repeat(500), &[]).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }
}
