//! The FCM HTTP v1 wake-up message (docs/protocol.md A.2): the token, the Android options and the
//! device hash as `data.account`. Nothing else reaches Google: no JID, no body, no sender.
//!
//! The JSON is written straight into one buffer: it has a fixed shape and one free-form string
//! (the push token), so a `serde_json::Value` tree per wake-up would only cost allocations.

use pushgate_core::DeviceHash;

use crate::config::AndroidPriority;

/// The body of `POST /v1/projects/{project}/messages:send` for one wake-up, as JSON text:
/// `{"message":{"token":…,"android":{"collapse_key"?:…,"priority":…},"data":{"account":…}}}`.
/// Without a device (a publish whose node is the token) there is no collapse key and `data`
/// is empty: the app learns only that it should connect.
pub fn wake_message(
    token: &str,
    device: Option<&DeviceHash>,
    collapse: bool,
    priority: AndroidPriority,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(128 + token.len());
    body.extend_from_slice(br#"{"message":{"token":"#);
    push_json_string(&mut body, token);
    body.extend_from_slice(br#","android":{"#);
    if let Some(device) = device.filter(|_| collapse) {
        // p2 collapses by device: a newer wake-up replaces one still waiting in FCM.
        body.extend_from_slice(br#""collapse_key":"#);
        push_json_string(&mut body, device.collapse_key());
        body.push(b',');
    }
    body.extend_from_slice(br#""priority":"#);
    push_json_string(&mut body, priority.as_str());
    body.extend_from_slice(br#"},"data":{"#);
    if let Some(device) = device {
        body.extend_from_slice(br#""account":"#);
        push_json_string(&mut body, device.as_str());
    }
    body.extend_from_slice(b"}}}");
    body
}

/// Appends `text` as a JSON string (RFC 8259 §7): quoted, with `"`, `\` and the control
/// characters escaped. Push tokens are ASCII, but they come from the network.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => br#"\""#,
            b'\\' => br"\\",
            b'\n' => br"\n",
            b'\r' => br"\r",
            b'\t' => br"\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        if escape.is_empty() {
            out.extend_from_slice(br"\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = at + 1;
    }
    // Multi-byte UTF-8 is copied as it is: JSON text is UTF-8 (RFC 8259 §8.1).
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const HASH: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";

    fn parsed(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn the_message_is_exactly_p2_s_plus_the_priority() {
        let device = DeviceHash::from_hex(HASH).expect("hash");
        assert_eq!(
            parsed(&wake_message(
                "tok",
                Some(&device),
                true,
                AndroidPriority::High
            )),
            json!({"message": {
                "token": "tok",
                "android": {"collapse_key": "ec1649", "priority": "high"},
                "data": {"account": HASH},
            }})
        );
        assert_eq!(
            parsed(&wake_message(
                "tok",
                Some(&device),
                false,
                AndroidPriority::Normal
            )),
            json!({"message": {
                "token": "tok",
                "android": {"priority": "normal"},
                "data": {"account": HASH},
            }})
        );
    }

    #[test]
    fn the_text_is_compact_and_stable() {
        let device = DeviceHash::from_hex(HASH).expect("hash");
        assert_eq!(
            String::from_utf8(wake_message(
                "tok",
                Some(&device),
                true,
                AndroidPriority::High
            ))
            .expect("UTF-8"),
            format!(
                r#"{{"message":{{"token":"tok","android":{{"collapse_key":"ec1649","priority":"high"}},"data":{{"account":"{HASH}"}}}}}}"#
            )
        );
    }

    #[test]
    fn any_token_text_is_escaped_and_reads_back_unchanged() {
        let device = DeviceHash::from_hex(HASH).expect("hash");
        for token in [
            "",
            "plain:APA91b-_x",
            r#"quote " and backslash \"#,
            "controls \u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f} end",
            "delete \u{7f}, é, ✓, 😀",
            r#"","data":{"account":"injected"}}"#,
        ] {
            let body = wake_message(token, Some(&device), true, AndroidPriority::High);
            let value = parsed(&body);
            assert_eq!(value["message"]["token"], token, "{token:?}");
            assert_eq!(value["message"]["data"]["account"], HASH, "{token:?}");
            assert_eq!(value["message"].as_object().map(|m| m.len()), Some(3));
        }
    }

    #[test]
    fn a_wake_up_for_no_device_has_no_account_and_no_collapse_key() {
        assert_eq!(
            parsed(&wake_message("tok", None, true, AndroidPriority::High)),
            json!({"message": {
                "token": "tok",
                "android": {"priority": "high"},
                "data": {},
            }})
        );
    }

    #[test]
    fn control_characters_use_the_short_or_unicode_escapes() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\u{0}\u{1f}\n\"\\b");
        assert_eq!(out, br#""a\u0000\u001f\n\"\\b""#);
    }
}
