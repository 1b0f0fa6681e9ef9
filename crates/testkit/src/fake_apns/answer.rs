//! What the fake answers: Apple's status codes and `{"reason": …}` bodies, and `apns-id`s.

use serde_json::json;

/// One scripted answer to a request that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApnsAnswer {
    /// 200, empty body.
    Ok,
    /// 410 `Unregistered` with `"timestamp"`: the token stopped being valid at `timestamp_ms`
    /// (milliseconds since the Unix epoch).
    Unregistered {
        /// When the token stopped being valid, in milliseconds since the Unix epoch.
        timestamp_ms: u64,
    },
    /// 400 `BadDeviceToken`.
    BadDeviceToken,
    /// 400 `DeviceTokenNotForTopic`.
    DeviceTokenNotForTopic,
    /// 429 `TooManyRequests`: too many requests to the same device token.
    TooManyRequests,
    /// 500 `InternalServerError`.
    InternalServerError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 503 `Shutdown`, then GOAWAY on the connection that carried the request: the server is
    /// going away, the client should open a new connection.
    Shutdown,
    /// Any other status (100 to 999) with this `reason` (an empty body for 200).
    Status(u16, String),
    /// No answer ever (until the client resets the stream or the fake stops).
    Never,
}

/// What a stream gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A status, and a reason unless it is 200.
    Answer {
        status: u16,
        reason: Option<String>,
        timestamp_ms: Option<u64>,
    },
    /// 503 `Shutdown`, then GOAWAY.
    Shutdown,
    /// Nothing.
    Never,
}

impl Outcome {
    /// A refusal with Apple's `reason`.
    pub(super) fn refuse(status: u16, reason: &str) -> Self {
        Self::Answer {
            status,
            reason: Some(reason.to_owned()),
            timestamp_ms: None,
        }
    }

    /// The status answered (`None` for no answer).
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            Self::Answer { status, .. } => Some(*status),
            Self::Shutdown => Some(503),
            Self::Never => None,
        }
    }

    /// The reason answered.
    pub(super) fn reason(&self) -> Option<String> {
        match self {
            Self::Answer { reason, .. } => reason.clone(),
            Self::Shutdown => Some("Shutdown".to_owned()),
            Self::Never => None,
        }
    }

    /// The JSON body: none for success, `{"reason"}` (and `"timestamp"` for 410) otherwise.
    pub(super) fn body(&self) -> Option<String> {
        let reason = self.reason()?;
        let body = match self {
            Self::Answer {
                timestamp_ms: Some(timestamp),
                ..
            } => json!({ "reason": reason, "timestamp": timestamp }),
            _ => json!({ "reason": reason }),
        };
        Some(body.to_string())
    }
}

impl From<ApnsAnswer> for Outcome {
    fn from(answer: ApnsAnswer) -> Self {
        match answer {
            ApnsAnswer::Ok => Self::Answer {
                status: 200,
                reason: None,
                timestamp_ms: None,
            },
            ApnsAnswer::Unregistered { timestamp_ms } => Self::Answer {
                status: 410,
                reason: Some("Unregistered".to_owned()),
                timestamp_ms: Some(timestamp_ms),
            },
            ApnsAnswer::BadDeviceToken => Self::refuse(400, "BadDeviceToken"),
            ApnsAnswer::DeviceTokenNotForTopic => Self::refuse(400, "DeviceTokenNotForTopic"),
            ApnsAnswer::TooManyRequests => Self::refuse(429, "TooManyRequests"),
            ApnsAnswer::InternalServerError => Self::refuse(500, "InternalServerError"),
            ApnsAnswer::ServiceUnavailable => Self::refuse(503, "ServiceUnavailable"),
            ApnsAnswer::Shutdown => Self::Shutdown,
            ApnsAnswer::Status(200, _) => Self::Answer {
                status: 200,
                reason: None,
                timestamp_ms: None,
            },
            ApnsAnswer::Status(status, reason) => Self::Answer {
                status,
                reason: Some(reason),
                timestamp_ms: None,
            },
            ApnsAnswer::Never => Self::Never,
        }
    }
}

/// Whether `id` is a canonical UUID: 8-4-4-4-12 hexadecimal digits.
pub(super) fn is_canonical_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A new random `apns-id`, a version 4 UUID in upper case as APNs writes them.
pub(super) fn new_apns_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Unique enough for a fake: the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_canonical_and_differ() {
        let (one, two) = (new_apns_id(), new_apns_id());
        assert!(is_canonical_uuid(&one), "{one}");
        assert_ne!(one, two);
        assert!(!is_canonical_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_canonical_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(is_canonical_uuid("123e4567-e89b-12d3-a456-426614174000"));
    }

    #[test]
    fn unregistered_carries_a_timestamp() {
        let outcome = Outcome::from(ApnsAnswer::Unregistered { timestamp_ms: 42 });
        assert_eq!(outcome.status(), Some(410));
        assert_eq!(
            outcome.body().as_deref(),
            Some(r#"{"reason":"Unregistered","timestamp":42}"#)
        );
        assert_eq!(Outcome::from(ApnsAnswer::Ok).body(), None);
    }

    #[test]
    fn every_answer_has_apples_status_and_reason() {
        let cases = [
            (ApnsAnswer::Ok, Some(200), None),
            (
                ApnsAnswer::BadDeviceToken,
                Some(400),
                Some("BadDeviceToken"),
            ),
            (
                ApnsAnswer::DeviceTokenNotForTopic,
                Some(400),
                Some("DeviceTokenNotForTopic"),
            ),
            (
                ApnsAnswer::TooManyRequests,
                Some(429),
                Some("TooManyRequests"),
            ),
            (
                ApnsAnswer::InternalServerError,
                Some(500),
                Some("InternalServerError"),
            ),
            (
                ApnsAnswer::ServiceUnavailable,
                Some(503),
                Some("ServiceUnavailable"),
            ),
            (ApnsAnswer::Shutdown, Some(503), Some("Shutdown")),
            (
                ApnsAnswer::Status(410, "ExpiredToken".to_owned()),
                Some(410),
                Some("ExpiredToken"),
            ),
            (
                ApnsAnswer::Status(200, "ignored".to_owned()),
                Some(200),
                None,
            ),
            (ApnsAnswer::Never, None, None),
        ];
        for (answer, status, reason) in cases {
            let outcome = Outcome::from(answer.clone());
            assert_eq!(outcome.status(), status, "{answer:?}");
            assert_eq!(outcome.reason().as_deref(), reason, "{answer:?}");
            let body = outcome
                .body()
                .map(|body| serde_json::from_str::<serde_json::Value>(&body).expect("JSON body"));
            assert_eq!(body, reason.map(|reason| json!({ "reason": reason })));
        }
    }
}
