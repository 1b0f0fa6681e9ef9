//! A `notify` request read as the spec writes it, and what becomes of each device.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider::{AcceptOutcome, Urgency};

/// The most devices one `notify` may name. Synapse sends one per request; more than this is
/// no homeserver's request.
pub const MAX_DEVICES: usize = 1000;

/// The largest message relayed to a client: UnifiedPush's limit, as for an RFC 8030 POST.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Why a body is not a `notify` request; the text is for the `M_BAD_JSON` error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Not JSON at all.
    #[error("the body is not JSON")]
    NotJson,
    /// JSON, but not the spec's shape.
    #[error("{0}")]
    Shape(&'static str),
    /// More than [`MAX_DEVICES`] devices.
    #[error("more than {MAX_DEVICES} devices in one notification")]
    TooManyDevices,
}

/// Why the homeserver is told to forget a pushkey (it deletes the pusher).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not one of pushgate's endpoints: pushgate relays to nobody else.
    Foreign,
    /// One of pushgate's, but its token does not open, has expired or was revoked.
    NotFound,
    /// The notification does not fit in a UnifiedPush message, even without `content`.
    TooLarge,
}

impl Rejection {
    /// The `reason` label of `pushgate_matrix_rejected_pushkeys_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Foreign => "foreign",
            Self::NotFound => "not_found",
            Self::TooLarge => "too_large",
        }
    }
}

/// A `notify` request, read.
#[derive(Clone, Debug)]
pub struct Notify {
    /// Each device's pushkey, in order.
    pub pushkeys: Vec<String>,
    /// What every device's client receives: `{"notification":{…}}` without `devices` (as
    /// UnifiedPush's common-proxies relays it: a device never learns the others' pushkeys),
    /// without `content` if that is what it takes to fit; `None` if even that does not fit.
    pub message: Option<Vec<u8>>,
    /// `prio: "low"` is low; anything else normal.
    pub urgency: Urgency,
}

impl Notify {
    /// Reads a request body: a JSON object whose `notification` is an object with a `devices`
    /// array of objects, each with string `app_id` and `pushkey`; the other fields the spec
    /// names, when present, of the type it gives them.
    ///
    /// The notification's fields are kept as the bytes they came as and copied into the
    /// message as they are: no tree of the (possibly large) `content` is built, and nothing
    /// is escaped twice.
    pub fn read(body: &[u8]) -> Result<Self, NotifyError> {
        let request: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_slice(body).map_err(|error| {
                if error.is_data() {
                    NotifyError::Shape("the body is not a JSON object")
                } else {
                    NotifyError::NotJson
                }
            })?;
        let notification = request
            .get("notification")
            .and_then(|raw| {
                serde_json::from_str::<BTreeMap<Cow<'_, str>, &RawValue>>(raw.get()).ok()
            })
            .ok_or(NotifyError::Shape(
                "`notification` is missing or not an object",
            ))?;
        let Some(devices) = notification.get("devices") else {
            return Err(NotifyError::Shape(
                "`notification.devices` is missing or not an array",
            ));
        };
        let devices: Vec<Device<'_>> = serde_json::from_str(devices.get()).map_err(|_| {
            NotifyError::Shape(
                "`notification.devices` is not an array of objects with string `app_id` and \
                 `pushkey` (and `pushkey_ts`, `data` and `tweaks` of the spec's types)",
            )
        })?;
        if devices.len() > MAX_DEVICES {
            return Err(NotifyError::TooManyDevices);
        }
        if devices.iter().any(|device| !device.well_typed()) {
            return Err(NotifyError::Shape(
                "a device's `data` or `tweaks` is not an object",
            ));
        }
        check_fields(&notification)?;
        let urgency = match notification
            .get("prio")
            .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok())
            .as_deref()
        {
            Some("low") => Urgency::Low,
            _ => Urgency::Normal,
        };
        Ok(Self {
            pushkeys: devices
                .into_iter()
                .map(|device| device.pushkey.into_owned())
                .collect(),
            message: message(&notification),
            urgency,
        })
    }
}

/// A device as the spec writes it (`app_id` and `pushkey` required).
#[derive(Deserialize)]
struct Device<'a> {
    #[serde(borrow)]
    #[allow(dead_code)] // required by the spec, so checked, but not used
    app_id: Cow<'a, str>,
    #[serde(borrow)]
    pushkey: Cow<'a, str>,
    #[allow(dead_code)] // typed by the spec, so checked, but not used
    pushkey_ts: Option<i64>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    tweaks: Option<&'a RawValue>,
}

impl Device<'_> {
    fn well_typed(&self) -> bool {
        [self.data, self.tweaks]
            .into_iter()
            .flatten()
            .all(|raw| raw.get().starts_with('{'))
    }
}

/// The notification's own fields, when present, are of the spec's types.
fn check_fields(notification: &BTreeMap<Cow<'_, str>, &RawValue>) -> Result<(), NotifyError> {
    const STRINGS: [&str; 8] = [
        "event_id",
        "room_id",
        "type",
        "sender",
        "sender_display_name",
        "room_name",
        "room_alias",
        "prio",
    ];
    // A raw value is valid JSON, so its first byte says its type.
    let starts = |key: &str, first: char| {
        notification
            .get(key)
            .is_none_or(|raw| raw.get().starts_with(first))
    };
    if !STRINGS.iter().all(|key| starts(key, '"')) {
        return Err(NotifyError::Shape(
            "a notification field the spec makes a string is not one",
        ));
    }
    if notification
        .get("user_is_target")
        .is_some_and(|raw| !matches!(raw.get(), "true" | "false"))
    {
        return Err(NotifyError::Shape("`user_is_target` is not a boolean"));
    }
    if !starts("content", '{') {
        return Err(NotifyError::Shape("`content` is not an object"));
    }
    if let Some(counts) = notification.get("counts")
        && serde_json::from_str::<BTreeMap<Cow<'_, str>, i64>>(counts.get()).is_err()
    {
        return Err(NotifyError::Shape("`counts` is not an object of integers"));
    }
    Ok(())
}

/// `{"notification":{…}}` as the client receives it, within [`MAX_MESSAGE_BYTES`]: every
/// field but `devices`, else also without `content`, else `None`.
fn message(notification: &BTreeMap<Cow<'_, str>, &RawValue>) -> Option<Vec<u8>> {
    let write = |skip_content: bool| {
        let mut out = Vec::with_capacity(MAX_MESSAGE_BYTES);
        out.extend_from_slice(b"{\"notification\":{");
        let mut first = true;
        for (key, raw) in notification {
            if key == "devices" || (skip_content && key == "content") {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            // A key is a plain string; writing it cannot fail.
            serde_json::to_writer(&mut out, key.as_ref()).ok()?;
            out.push(b':');
            out.extend_from_slice(raw.get().as_bytes());
        }
        out.extend_from_slice(b"}}");
        Some(out)
    };
    let whole = write(false)?;
    if whole.len() <= MAX_MESSAGE_BYTES {
        return Some(whole);
    }
    if !notification.contains_key("content") {
        return None;
    }
    write(true).filter(|trimmed| trimmed.len() <= MAX_MESSAGE_BYTES)
}

/// The endpoint token of `pushkey` when it is one of pushgate's endpoints: the pushkey is
/// exactly `push_url_prefix` (`{public_url}/push/`) followed by a token that is one path
/// segment. `None` for anything else, however close.
pub fn own_token<'a>(pushkey: &'a str, push_url_prefix: &str) -> Option<&'a str> {
    let token = pushkey.strip_prefix(push_url_prefix)?;
    let one_segment = !token.is_empty()
        && !token.contains(['/', '?', '#', '%', '\\'])
        && token != "."
        && token != "..";
    one_segment.then_some(token)
}

/// What an endpoint's outcome means for its pushkey: a token that does not open, expired or
/// was revoked is rejected; anything else keeps the pusher (a full store or a busy database is
/// passing, and the message was kept or dropped as the endpoint's rules say).
pub fn rejection_of(outcome: &AcceptOutcome) -> Option<Rejection> {
    matches!(outcome, AcceptOutcome::NotFound).then_some(Rejection::NotFound)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const PREFIX: &str = "https://up.example/push/";

    fn read(value: Value) -> Result<Notify, NotifyError> {
        Notify::read(value.to_string().as_bytes())
    }

    fn device(pushkey: &str) -> Value {
        json!({"app_id": "im.vector.app.android", "pushkey": pushkey, "pushkey_ts": 12345678,
               "data": {"url": "https://up.example/_matrix/push/v1/notify", "format": "event_id_only"},
               "tweaks": {"sound": "bing"}})
    }

    #[test]
    fn the_client_gets_the_notification_without_any_device() {
        let notify = read(json!({"notification": {
            "event_id": "$3957tyerfgewrf384", "room_id": "!slw48wfj34rtnrf:example.org",
            "counts": {"unread": 2, "missed_calls": 1}, "prio": "high",
            "devices": [device("https://up.example/push/v2.local.a"), device("https://other.example/x")],
        }}))
        .expect("the spec's shape");
        assert_eq!(
            notify.pushkeys,
            [
                "https://up.example/push/v2.local.a",
                "https://other.example/x"
            ]
        );
        assert_eq!(notify.urgency, Urgency::Normal);
        let message: Value = serde_json::from_slice(&notify.message.expect("fits")).expect("JSON");
        assert_eq!(
            message,
            json!({"notification": {
                "event_id": "$3957tyerfgewrf384", "room_id": "!slw48wfj34rtnrf:example.org",
                "counts": {"unread": 2, "missed_calls": 1}, "prio": "high",
            }})
        );
        let low = read(json!({"notification": {"prio": "low", "devices": [device("k")]}}))
            .expect("shape");
        assert_eq!(low.urgency, Urgency::Low);
    }

    #[test]
    fn a_notification_too_large_loses_its_content_first_then_fits_no_more() {
        let big = "x".repeat(5000);
        let notify = read(json!({"notification": {
            "event_id": "$e", "content": {"body": big}, "devices": [device("k")],
        }}))
        .expect("shape");
        let message: Value = serde_json::from_slice(&notify.message.expect("fits")).expect("JSON");
        assert_eq!(message, json!({"notification": {"event_id": "$e"}}));
        let notify = read(json!({"notification": {
            "event_id": "$e", "room_name": big, "devices": [device("k")],
        }}))
        .expect("shape");
        assert_eq!(notify.message, None);
    }

    #[test]
    fn anything_but_the_spec_s_shape_is_refused() {
        for (body, expected) in [
            (b"not json".to_vec(), NotifyError::NotJson),
            (
                b"[]".to_vec(),
                NotifyError::Shape("the body is not a JSON object"),
            ),
        ] {
            assert_eq!(Notify::read(&body).expect_err("refused"), expected);
        }
        for value in [
            json!({}),
            json!({"notification": []}),
            json!({"notification": {}}),
            json!({"notification": {"devices": {}}}),
            json!({"notification": {"devices": [1]}}),
            json!({"notification": {"devices": [{"pushkey": "k"}]}}),
            json!({"notification": {"devices": [{"app_id": "a", "pushkey": 1}]}}),
            json!({"notification": {"devices": [{"app_id": "a", "pushkey": "k", "data": 1}]}}),
            json!({"notification": {"event_id": 1, "devices": [device("k")]}}),
            json!({"notification": {"counts": {"unread": "2"}, "devices": [device("k")]}}),
            json!({"notification": {"content": "x", "devices": [device("k")]}}),
            json!({"notification": {"user_is_target": "yes", "devices": [device("k")]}}),
        ] {
            assert!(
                matches!(read(value.clone()), Err(NotifyError::Shape(_))),
                "{value}"
            );
        }
        let many: Vec<Value> = (0..=MAX_DEVICES).map(|n| device(&n.to_string())).collect();
        assert_eq!(
            read(json!({"notification": {"devices": many}})).expect_err("refused"),
            NotifyError::TooManyDevices
        );
        let most: Vec<Value> = (0..MAX_DEVICES).map(|n| device(&n.to_string())).collect();
        assert_eq!(
            read(json!({"notification": {"devices": most}}))
                .expect("at the limit")
                .pushkeys
                .len(),
            MAX_DEVICES
        );
    }

    #[test]
    fn only_a_token_right_under_pushgate_s_push_path_is_its_own() {
        assert_eq!(
            own_token("https://up.example/push/v2.local.abc", PREFIX),
            Some("v2.local.abc")
        );
        for foreign in [
            "https://up.example/push/",
            "https://up.example/push/a/b",
            "https://up.example/push/../metrics",
            "https://up.example/push/..",
            "https://up.example/push/%2e%2e",
            "https://up.example/push/a?b",
            "https://up.example/push/a#b",
            "https://up.example/metrics",
            "https://up.example/health",
            "https://up.example/trace",
            "http://up.example/push/v2.local.abc",
            "https://up.example.evil/push/v2.local.abc",
            "https://up.example:8443/push/v2.local.abc",
            "v2.local.abc",
        ] {
            assert_eq!(own_token(foreign, PREFIX), None, "{foreign}");
        }
    }

    #[test]
    fn only_an_endpoint_that_is_gone_rejects_its_pushkey() {
        assert_eq!(
            rejection_of(&AcceptOutcome::NotFound),
            Some(Rejection::NotFound)
        );
        for kept in [
            AcceptOutcome::Delivered { ttl_secs: 1 },
            AcceptOutcome::Stored { ttl_secs: 1 },
            AcceptOutcome::Dropped,
            AcceptOutcome::OwnerFull,
            AcceptOutcome::Unavailable,
        ] {
            assert_eq!(rejection_of(&kept), None, "{kept:?}");
        }
    }
}
