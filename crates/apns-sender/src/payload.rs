//! The payload of a wake-up, the same for every device of an app: it says only that there is
//! something new. Nothing about the account, the sender or the message reaches Apple.
//!
//! - alert: `{"aps":{"alert":{"title":…,"body"?:…},"mutable-content":1,"sound"?:…}}`, as
//!   fpush, p2 and mod_push_appserver send it, so the app's notification service extension
//!   runs, connects and shows the real message;
//! - silent: `{"aps":{"content-available":1}}`;
//!
//! with the app's [`extra`](crate::ApnsConfig::extra) keys beside `aps`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::config::{ApnsConfig, PayloadKind};

/// The largest payload APNs takes (413 `PayloadTooLarge` past it).
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// A payload, serialised once per app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload(Bytes);

impl Payload {
    /// The payload `config` asks for.
    pub fn of(config: &ApnsConfig) -> Self {
        let aps = match config.payload {
            PayloadKind::Alert => {
                let mut alert = Map::new();
                alert.insert("title".into(), Value::String(config.alert_title.clone()));
                if let Some(body) = &config.alert_body {
                    alert.insert("body".into(), Value::String(body.clone()));
                }
                let mut aps = Map::new();
                aps.insert("alert".into(), Value::Object(alert));
                aps.insert("mutable-content".into(), json!(1));
                if !config.sound.is_empty() {
                    aps.insert("sound".into(), Value::String(config.sound.clone()));
                }
                aps
            }
            PayloadKind::Silent => {
                let mut aps = Map::new();
                aps.insert("content-available".into(), json!(1));
                aps
            }
        };
        let mut payload = config.extra.clone();
        payload.insert("aps".into(), Value::Object(aps));
        // A map of strings and plain values always serialises.
        Self(Bytes::from(
            serde_json::to_vec(&Value::Object(payload)).unwrap_or_default(),
        ))
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a payload made by [`of`](Self::of)).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes sent.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(config: &ApnsConfig) -> Value {
        serde_json::from_slice(Payload::of(config).bytes()).expect("JSON")
    }

    #[test]
    fn an_alert_is_generic_and_mutable() {
        assert_eq!(
            parsed(&ApnsConfig::default()),
            json!({"aps": {"alert": {"title": "New message"}, "mutable-content": 1, "sound": "default"}})
        );
        let config = ApnsConfig {
            alert_title: "Pushgate".into(),
            alert_body: Some("Something new".into()),
            sound: String::new(),
            ..ApnsConfig::default()
        };
        assert_eq!(
            parsed(&config),
            json!({"aps": {"alert": {"title": "Pushgate", "body": "Something new"}, "mutable-content": 1}})
        );
    }

    #[test]
    fn a_silent_push_is_content_available_only_and_extra_keys_sit_beside_aps() {
        let mut extra = Map::new();
        extra.insert("knownGoodBuildNumber".into(), json!(1234));
        let config = ApnsConfig {
            payload: PayloadKind::Silent,
            extra,
            ..ApnsConfig::default()
        };
        assert_eq!(
            parsed(&config),
            json!({"aps": {"content-available": 1}, "knownGoodBuildNumber": 1234})
        );
    }
}
