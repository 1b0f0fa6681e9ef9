//! Judging one request as APNs does, in the order of Apple's "Handling notification responses
//! from APNs" table: method, path and device token, provider token, `apns-*` headers,
//! payload; then the token's script.

use std::sync::PoisonError;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::answer::{Outcome, is_canonical_uuid, new_apns_id};
use super::connection::Connection;
use super::jwt::{self, Refusal};
use super::{
    ApnsRequest, MAX_PAYLOAD_BYTES, MAX_VOIP_PAYLOAD_BYTES, PROVIDER_TOKEN_MAX_AGE,
    PROVIDER_TOKEN_MIN_UPDATE_INTERVAL, Shared,
};

const DEVICE_PATH: &str = "/3/device/";
const PRIORITIES: [&str; 3] = ["10", "5", "1"];
const PUSH_TYPES: [&str; 9] = [
    "alert",
    "background",
    "location",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
];
const MAX_COLLAPSE_ID_BYTES: usize = 64;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Judges a request, records it, and says how to answer it.
pub(super) fn judge(
    shared: &Shared,
    connection: &Connection,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> (Outcome, String) {
    let token = path
        .strip_prefix(DEVICE_PATH)
        .or_else(|| (path == "/3/device").then_some(""))
        .unwrap_or_default();
    let authorization = header(headers, "authorization");
    let provider_token = authorization.as_deref().and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let apns_id = header(headers, "apns-id");
    let answered_apns_id = apns_id
        .clone()
        .filter(|id| is_canonical_uuid(id))
        .unwrap_or_else(new_apns_id);
    let mut record = ApnsRequest {
        connection: connection.number,
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        token: token.to_owned(),
        topic: header(headers, "apns-topic"),
        push_type: header(headers, "apns-push-type"),
        priority: header(headers, "apns-priority"),
        expiration: header(headers, "apns-expiration"),
        collapse_id: header(headers, "apns-collapse-id"),
        apns_id,
        jwt: provider_token.as_deref().and_then(jwt::decode),
        provider_token,
        json: serde_json::from_slice(&body).ok(),
        body,
        status: None,
        reason: None,
        answered_apns_id: answered_apns_id.clone(),
    };
    let outcome = match refusal(shared, connection, &record, authorization.is_some()) {
        Some(refusal) => refusal,
        None => {
            let mut state = shared.state();
            let scripted = state
                .scripts
                .get_mut(token)
                .and_then(|answers| answers.pop_front());
            scripted
                .unwrap_or_else(|| state.default_answer.clone())
                .into()
        }
    };
    record.status = outcome.status();
    record.reason = outcome.reason();
    let mut state = shared.state();
    if let Some(provider_token) = &record.provider_token {
        state.provider_tokens.insert(provider_token.clone());
    }
    state.requests.push(record);
    (outcome, answered_apns_id)
}

/// Why APNs refuses `request`, if it does.
fn refusal(
    shared: &Shared,
    connection: &Connection,
    request: &ApnsRequest,
    has_authorization: bool,
) -> Option<Outcome> {
    if request.method != Method::POST.as_str() {
        return Some(Outcome::refuse(405, "MethodNotAllowed"));
    }
    let token = &request.token;
    let device_path = request.path.starts_with(DEVICE_PATH) || request.path == "/3/device";
    if !device_path || token.contains('/') {
        return Some(Outcome::refuse(404, "BadPath"));
    }
    if token.is_empty() {
        return Some(Outcome::refuse(400, "MissingDeviceToken"));
    }
    if !token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Some(Outcome::refuse(400, "BadDeviceToken"));
    }
    if let Some(refusal) = provider_token_refusal(shared, connection, request, has_authorization) {
        return Some(refusal);
    }
    header_refusal(shared, request).or_else(|| payload_refusal(request))
}

fn provider_token_refusal(
    shared: &Shared,
    connection: &Connection,
    request: &ApnsRequest,
    has_authorization: bool,
) -> Option<Outcome> {
    let Some(provider_token) = &request.provider_token else {
        return Some(if has_authorization {
            Outcome::refuse(403, "InvalidProviderToken")
        } else {
            Outcome::refuse(403, "MissingProviderToken")
        });
    };
    let now = shared.now();
    let mut last = connection
        .provider_token
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((token, _)) = &*last
        && token == provider_token
    {
        // Verified when the connection took it, as APNs does: only its age can have changed.
        // (Verifying ES256 on every request would make the fake the bottleneck of a
        // benchmark.)
        let iat = request.jwt.as_ref().map_or(0, |jwt| jwt.iat);
        let expired = now.as_secs().saturating_sub(iat) > PROVIDER_TOKEN_MAX_AGE.as_secs();
        return expired.then(|| Outcome::refuse(403, "ExpiredProviderToken"));
    }
    match jwt::check(provider_token, &shared.public_key, now.as_secs()) {
        Ok(()) => {}
        Err(Refusal::Invalid) => return Some(Outcome::refuse(403, "InvalidProviderToken")),
        Err(Refusal::Expired) => return Some(Outcome::refuse(403, "ExpiredProviderToken")),
    }
    match &*last {
        Some((_, first_used))
            if now.saturating_sub(*first_used) < PROVIDER_TOKEN_MIN_UPDATE_INTERVAL =>
        {
            Some(Outcome::refuse(429, "TooManyProviderTokenUpdates"))
        }
        _ => {
            *last = Some((provider_token.clone(), now));
            None
        }
    }
}

fn header_refusal(shared: &Shared, request: &ApnsRequest) -> Option<Outcome> {
    let Some(topic) = &request.topic else {
        return Some(Outcome::refuse(400, "MissingTopic"));
    };
    let (allowed, refuse_background_priority_10) = {
        let state = shared.state();
        let allowed = state
            .allowed_topics
            .as_ref()
            .is_none_or(|topics| topics.contains(topic));
        (allowed, state.refuse_background_priority_10)
    };
    if !allowed {
        return Some(Outcome::refuse(400, "TopicDisallowed"));
    }
    let priority = request.priority.as_deref();
    if priority.is_some_and(|priority| !PRIORITIES.contains(&priority)) {
        return Some(Outcome::refuse(400, "BadPriority"));
    }
    let push_type = request.push_type.as_deref();
    if push_type.is_some_and(|push_type| !PUSH_TYPES.contains(&push_type)) {
        return Some(Outcome::refuse(400, "InvalidPushType"));
    }
    if refuse_background_priority_10 && push_type == Some("background") && priority == Some("10") {
        return Some(Outcome::refuse(400, "BadPriority"));
    }
    if request
        .collapse_id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_COLLAPSE_ID_BYTES)
    {
        return Some(Outcome::refuse(400, "BadCollapseId"));
    }
    if request
        .apns_id
        .as_deref()
        .is_some_and(|id| !is_canonical_uuid(id))
    {
        return Some(Outcome::refuse(400, "BadMessageId"));
    }
    let expiration = request.expiration.as_deref();
    let non_negative_integer =
        |value: &str| !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
    if expiration.is_some_and(|expiration| !non_negative_integer(expiration)) {
        return Some(Outcome::refuse(400, "BadExpirationDate"));
    }
    None
}

fn payload_refusal(request: &ApnsRequest) -> Option<Outcome> {
    let limit = if request.push_type.as_deref() == Some("voip") {
        MAX_VOIP_PAYLOAD_BYTES
    } else {
        MAX_PAYLOAD_BYTES
    };
    if request.body.is_empty() {
        Some(Outcome::refuse(400, "PayloadEmpty"))
    } else if request.body.len() > limit {
        Some(Outcome::refuse(413, "PayloadTooLarge"))
    } else {
        None
    }
}
