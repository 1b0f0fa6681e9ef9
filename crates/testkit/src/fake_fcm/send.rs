//! The fake `POST /v1/projects/{project}/messages:send`: bearer check, strict message check,
//! scripted answer.

use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::answer::{self, Answer, Reply};
use super::{FAKE_PROJECT_ID, ReceivedMessage, Shared};

/// Counts a send as in flight for as long as it lives, however the handler ends.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) async fn messages_send(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    shared.send_requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(shared);

    let expected_path = format!("/v1/projects/{FAKE_PROJECT_ID}/messages:send");
    if path != expected_path {
        // Google answers a foreign or unknown project with PERMISSION_DENIED, no FCM detail.
        let body = json!({"error": {
            "code": 403,
            "message": "Permission 'cloudmessaging.messages.create' denied on resource.",
            "status": "PERMISSION_DENIED",
        }});
        return answer::json(403, &body, None);
    }
    if !bearer_is_valid(shared, headers) {
        return answer::unauthenticated();
    }
    let message = match check_message(body) {
        Ok(message) => message,
        Err(problem) => return answer::invalid_argument(&problem),
    };

    let scripted = {
        let mut state = shared.state();
        *state
            .sends_per_token
            .entry(message.token.clone())
            .or_default() += 1;
        let next = state
            .scripts
            .get_mut(&message.token)
            .and_then(|script| script.pop_front());
        next.unwrap_or_else(|| state.default_answer.clone())
    };
    let Answer { delay, reply } = scripted;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match reply {
        Reply::Success => {
            let mut state = shared.state();
            let id = state.messages.len();
            state.messages.push(message);
            let name = format!("projects/{FAKE_PROJECT_ID}/messages/0:{id:016}%31bd1c9631bd1c96");
            answer::json(200, &json!({"name": name}), None)
        }
        Reply::Error { code, retry_after } => answer::fcm_error(code, retry_after.as_deref()),
        Reply::Unauthenticated => answer::unauthenticated(),
        Reply::Raw {
            status,
            body,
            retry_after,
        } => answer::raw(status, &body, retry_after.as_deref()),
        Reply::Never => {
            shared.shutdown.cancelled().await;
            answer::raw(503, "shutting down", None)
        }
    }
}

fn bearer_is_valid(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    shared
        .state()
        .access_tokens
        .get(token)
        .is_some_and(|expires_at| *expires_at > tokio::time::Instant::now())
}

/// Accepts exactly pushgate's wake-up (docs/protocol.md A.2) and nothing more:
/// `{"message":{"token","android":{"collapse_key"?,"priority"?},"data":{"account"}}}`.
fn check_message(body: &[u8]) -> Result<ReceivedMessage, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| format!("Invalid JSON payload received. {error}"))?;
    let root = object(&value, "the body")?;
    only_keys(root, &["message"], "the body")?;
    let message = object(&root["message"], "message")?;
    only_keys(message, &["token", "android", "data"], "message")?;

    let token = message
        .get("token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or("message.token must be a non-empty string")?;
    let data = object(message.get("data").unwrap_or(&Value::Null), "message.data")?;
    only_keys(data, &["account"], "message.data")?;
    let account = data
        .get("account")
        .and_then(Value::as_str)
        .filter(|account| {
            account.len() == 40
                && account
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or("message.data.account must be 40 lowercase hex characters")?;

    let (collapse_key, priority) = match message.get("android") {
        None => (None, None),
        Some(android) => {
            let android = object(android, "message.android")?;
            only_keys(android, &["collapse_key", "priority"], "message.android")?;
            let collapse_key = match android.get("collapse_key") {
                None => None,
                Some(Value::String(key)) if key == &account[..6] => Some(key.clone()),
                Some(_) => {
                    return Err("message.android.collapse_key must be the first 6 characters of data.account".into());
                }
            };
            // Google reads the AndroidMessagePriority enum in either case.
            let priority = match android.get("priority") {
                None => None,
                Some(Value::String(priority))
                    if ["high", "normal"].contains(&priority.to_ascii_lowercase().as_str()) =>
                {
                    Some(priority.clone())
                }
                Some(other) => {
                    return Err(format!(
                        "Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), {other}"
                    ));
                }
            };
            (collapse_key, priority)
        }
    };
    Ok(ReceivedMessage {
        token: token.to_owned(),
        account: account.to_owned(),
        collapse_key,
        priority,
        body: value.clone(),
    })
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be a JSON object"))
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "Invalid JSON payload received. Unknown name \"{key}\" at '{what}': Cannot find field."
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";

    fn check(value: Value) -> Result<ReceivedMessage, String> {
        check_message(value.to_string().as_bytes())
    }

    #[test]
    fn pushgate_s_message_passes() {
        let message = check(json!({"message": {
            "token": "t",
            "android": {"collapse_key": "ec1649", "priority": "high"},
            "data": {"account": HASH},
        }}))
        .expect("valid");
        assert_eq!(message.collapse_key.as_deref(), Some("ec1649"));
        assert_eq!(message.priority.as_deref(), Some("high"));
        assert_eq!(message.account, HASH);
    }

    #[test]
    fn anything_more_or_different_is_refused() {
        for bad in [
            json!({"message": {"token": "t", "data": {"account": HASH}}, "validate_only": true}),
            json!({"message": {"token": "t", "data": {"account": HASH}, "notification": {}}}),
            json!({"message": {"token": "t", "data": {"account": HASH, "jid": "a@b"}}}),
            json!({"message": {"token": "", "data": {"account": HASH}}}),
            json!({"message": {"token": "t", "data": {"account": "EC164939A8485EE6B7F7871071A11C7BB18AEAD5"}}}),
            json!({"message": {"token": "t", "data": {}}}),
            json!({"message": {"token": "t", "android": {"collapse_key": "ec164"}, "data": {"account": HASH}}}),
            json!({"message": {"token": "t", "android": {"priority": "urgent"}, "data": {"account": HASH}}}),
            json!({"message": {"token": "t", "android": {"ttl": "0s"}, "data": {"account": HASH}}}),
            json!([]),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad}");
        }
        assert!(check_message(b"not json").is_err());
    }
}
