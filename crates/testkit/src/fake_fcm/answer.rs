//! What the fake answers to a send: Google's captured JSON, verbatim.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// FCM HTTP v1 answers as Google documents them.
const CAPTURED: &str = include_str!("fcm-v1-responses.json");

static CAPTURES: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(CAPTURED).unwrap_or_default());

/// The `errorCode`s of FCM HTTP v1 (the `FcmError` detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FcmErrorCode {
    /// 404: the token is no longer registered.
    Unregistered,
    /// 400: the message or token is malformed.
    InvalidArgument,
    /// 403: the token belongs to another sender.
    SenderIdMismatch,
    /// 429: over quota; carries `Retry-After`.
    QuotaExceeded,
    /// 503: FCM is overloaded.
    Unavailable,
    /// 500: FCM failed.
    Internal,
    /// 401: the APNs or Web Push credentials of the project are wrong.
    ThirdPartyAuthError,
}

impl FcmErrorCode {
    /// Every code, for tests that go through all of them.
    pub const ALL: [Self; 7] = [
        Self::Unregistered,
        Self::InvalidArgument,
        Self::SenderIdMismatch,
        Self::QuotaExceeded,
        Self::Unavailable,
        Self::Internal,
        Self::ThirdPartyAuthError,
    ];

    /// The code as FCM writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unregistered => "UNREGISTERED",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::SenderIdMismatch => "SENDER_ID_MISMATCH",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::ThirdPartyAuthError => "THIRD_PARTY_AUTH_ERROR",
        }
    }
}

/// Google's captured answer for `code`: the HTTP status, the JSON body, and the `Retry-After`
/// header when it has one.
pub fn captured_error(code: FcmErrorCode) -> (u16, Value, Option<String>) {
    let entry = &CAPTURES["errors"][code.as_str()];
    let status = entry["status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .unwrap_or(500);
    let retry_after = entry["headers"]["Retry-After"].as_str().map(str::to_owned);
    (status, entry["body"].clone(), retry_after)
}

/// One scripted answer to a send.
#[derive(Clone, Debug)]
pub struct Answer {
    pub(super) delay: Duration,
    pub(super) reply: Reply,
}

#[derive(Clone, Debug)]
pub(super) enum Reply {
    Success,
    Error {
        code: FcmErrorCode,
        retry_after: Option<String>,
    },
    Unauthenticated,
    Raw {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    Never,
}

impl Answer {
    fn reply(reply: Reply) -> Self {
        Self {
            delay: Duration::ZERO,
            reply,
        }
    }

    /// 200 with `{"name": "projects/{project}/messages/0:…"}`; the message is recorded.
    pub fn success() -> Self {
        Self::reply(Reply::Success)
    }

    /// Google's captured error for `code`, with its `Retry-After` if it has one.
    pub fn error(code: FcmErrorCode) -> Self {
        Self::reply(Reply::Error {
            code,
            retry_after: captured_error(code).2,
        })
    }

    /// 401 `UNAUTHENTICATED` without an `FcmError` detail, as for a bad bearer token.
    pub fn unauthenticated() -> Self {
        Self::reply(Reply::Unauthenticated)
    }

    /// Any status and body (e.g. an HTML page from a proxy).
    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Self::reply(Reply::Raw {
            status,
            body: body.into(),
            retry_after: None,
        })
    }

    /// No answer at all until the fake stops.
    pub fn never() -> Self {
        Self::reply(Reply::Never)
    }

    /// The same answer after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets (or with `None` removes) the `Retry-After` header of an error answer.
    pub fn with_retry_after(mut self, value: Option<&str>) -> Self {
        match &mut self.reply {
            Reply::Error { retry_after, .. } | Reply::Raw { retry_after, .. } => {
                *retry_after = value.map(str::to_owned);
            }
            Reply::Success | Reply::Unauthenticated | Reply::Never => {}
        }
        self
    }
}

/// A JSON answer.
pub(super) fn json(status: u16, body: &Value, retry_after: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(value).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Google's 401 for a missing, unknown or expired bearer token.
pub(super) fn unauthenticated() -> Response {
    let auth = &CAPTURES["auth_error"];
    json(401, &auth["body"], None)
}

/// A captured FCM error.
pub(super) fn fcm_error(code: FcmErrorCode, retry_after: Option<&str>) -> Response {
    let (status, body, _) = captured_error(code);
    json(status, &body, retry_after)
}

/// `INVALID_ARGUMENT` with the fake's own reason, shaped as Google's.
pub(super) fn invalid_argument(message: &str) -> Response {
    let (status, mut body, _) = captured_error(FcmErrorCode::InvalidArgument);
    body["error"]["message"] = message.into();
    json(status, &body, None)
}

/// Google's 404 for an unknown path.
pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

/// A raw answer.
pub(super) fn raw(status: u16, body: &str, retry_after: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body.to_owned()).into_response();
    if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(value).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_captured_answer_with_its_detail() {
        for code in FcmErrorCode::ALL {
            let (status, body, _) = captured_error(code);
            assert!(status >= 400, "{code:?}");
            assert_eq!(body["error"]["code"], u64::from(status));
            assert_eq!(body["error"]["details"][0]["errorCode"], code.as_str());
        }
        assert_eq!(
            captured_error(FcmErrorCode::QuotaExceeded).2.as_deref(),
            Some("1")
        );
    }
}
