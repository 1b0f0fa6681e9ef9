//! The FCM HTTP v1 wake-up message (PROTOCOL.md A.2): the token, the Android options and the
//! device hash as `data.account`. Nothing else reaches Google: no JID, no body, no sender.

use pushgate_core::DeviceHash;
use serde_json::{Map, Value, json};

use crate::config::AndroidPriority;

/// The body of `POST /v1/projects/{project}/messages:send` for one wake-up.
pub fn wake_message(
    token: &str,
    device: &DeviceHash,
    collapse: bool,
    priority: AndroidPriority,
) -> Value {
    let mut android = Map::new();
    if collapse {
        // p2 collapses by device: a newer wake-up replaces one still waiting in FCM.
        android.insert("collapse_key".into(), device.collapse_key().into());
    }
    android.insert("priority".into(), priority.as_str().into());
    json!({
        "message": {
            "token": token,
            "android": android,
            "data": {"account": device.as_str()},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";

    #[test]
    fn the_message_is_exactly_p2_s_plus_the_priority() {
        let device = DeviceHash::from_hex(HASH).expect("hash");
        assert_eq!(
            wake_message("tok", &device, true, AndroidPriority::High),
            json!({"message": {
                "token": "tok",
                "android": {"collapse_key": "ec1649", "priority": "high"},
                "data": {"account": HASH},
            }})
        );
        assert_eq!(
            wake_message("tok", &device, false, AndroidPriority::Normal),
            json!({"message": {
                "token": "tok",
                "android": {"priority": "normal"},
                "data": {"account": HASH},
            }})
        );
    }
}
