//! What Conversations sends to a push component and how it reads the answers, byte for byte
//! as docs/protocol.md Part B §3 describes it, for tests that play the phone's XMPP client over
//! [`C2sClient`](crate::c2s_client::C2sClient).
//!
//! - XEP-0357 app server (p2): `register-push-fcm`, then `enable` to the user's own server
//!   (and, for iOS clients of a p2-style server, `register-push-apns`; for Monal, whose app
//!   server speaks fpush's protocol, the token-in-node `enable`).
//! - UnifiedPush distributor (up): `<register/>`, the directed presence, and the answers to
//!   `<push/>`.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio_xmpp::minidom::Element;

use crate::c2s_client::stanza::{NS_CLIENT, NS_STANZAS, element, iq, set_attr};

/// XEP-0050 ad-hoc commands.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0004 data forms.
pub const NS_DATA: &str = "jabber:x:data";
/// XEP-0357 push notifications.
pub const NS_PUSH: &str = "urn:xmpp:push:0";
/// The UnifiedPush-over-XMPP draft Conversations speaks.
pub const NS_UP: &str = "http://gultsch.de/xmpp/drafts/unified-push";
/// XEP-0060 publish options form type.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// The device hash an FCM wake-up carries in `data.account`: lowercase hex SHA-1 of
/// `bareJID + "\0" + androidId` (Conversations `CryptoHelper.getAccountFingerprint`).
pub fn account_fingerprint(bare_jid: &str, android_id: &str) -> String {
    let input = format!("{bare_jid}\0{android_id}");
    let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, input.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Conversations' UnifiedPush id: standard padded base64 of SHA-256 of `uuid + "\0" + value`
/// (`UnifiedPushBroker.hash`), 44 characters.
pub fn up_hash(account_uuid: &str, value: &str) -> String {
    let input = format!("{account_uuid}\0{value}");
    STANDARD.encode(digest::digest(&digest::SHA256, input.as_bytes()))
}

/// A `jabber:x:data` field with one value and no type, as Conversations' `Data.of` writes it.
fn field(var: &str, value: &str) -> Element {
    let mut field = element("field", NS_DATA, &[("var", var)]);
    let mut value_element = Element::bare("value", NS_DATA);
    value_element.append_text(value);
    field.append_child(value_element);
    field
}

/// The registration with the app server (`PushManagementService.registerPushTokenOnServer`):
/// command `register-push-fcm`, `action='execute'`, a submit form with `token` and
/// `android-id`, no `FORM_TYPE`.
pub fn register_push_fcm(app_server: &str, token: &str, android_id: &str) -> Element {
    let mut form = element("x", NS_DATA, &[("type", "submit")]);
    form.append_child(field("token", token));
    form.append_child(field("android-id", android_id));
    let mut command = element(
        "command",
        NS_COMMANDS,
        &[("node", "register-push-fcm"), ("action", "execute")],
    );
    command.append_child(form);
    iq("set", app_server, command)
}

/// p2's `register-push-apns`, as an iOS client of a p2-style app server sends it: a submit form
/// with the APNs `token` (hex) and a `device-id`. Read the answer with
/// [`read_push_registration`].
pub fn register_push_apns(app_server: &str, token: &str, device_id: &str) -> Element {
    let mut form = element("x", NS_DATA, &[("type", "submit")]);
    form.append_child(field("token", token));
    form.append_child(field("device-id", device_id));
    let mut command = element(
        "command",
        NS_COMMANDS,
        &[("node", "register-push-apns"), ("action", "execute")],
    );
    command.append_child(form);
    iq("set", app_server, command)
}

/// Monal's XEP-0357 `enable` (`XMPPIQ setPushEnableWithNode:onAppserver:`): the node is the
/// APNs device token itself, no secret, and a `pushModule` publish option naming the app
/// (`monalProdiOS`, `monalProdiOS-sandbox`, …). There is no registration step.
pub fn monal_push_enable(app_server: &str, token: &str, push_module: &str) -> Element {
    let mut form = element("x", NS_DATA, &[("type", "submit")]);
    let mut form_type = field("FORM_TYPE", PUBLISH_OPTIONS);
    set_attr(&mut form_type, "type", "hidden");
    form.append_child(form_type);
    form.append_child(field("pushModule", push_module));
    let mut enable = element("enable", NS_PUSH, &[("jid", app_server), ("node", token)]);
    enable.append_child(form);
    let mut stanza = element("iq", NS_CLIENT, &[("type", "set")]);
    stanza.append_child(enable);
    stanza
}

/// XEP-0357 `enable` to the account's own server (no `to`), with the publish-options form
/// carrying the secret, as Conversations sends it right after registering.
pub fn push_enable(app_server: &str, node: &str, secret: &str) -> Element {
    let mut form = element("x", NS_DATA, &[("type", "submit")]);
    let mut form_type = field("FORM_TYPE", PUBLISH_OPTIONS);
    set_attr(&mut form_type, "type", "hidden");
    form.append_child(form_type);
    form.append_child(field("secret", secret));
    let mut enable = element("enable", NS_PUSH, &[("jid", app_server), ("node", node)]);
    enable.append_child(form);
    let mut stanza = element("iq", NS_CLIENT, &[("type", "set")]);
    stanza.append_child(enable);
    stanza
}

/// What the app server's answer to `register-push-fcm` gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRegistration {
    /// The form's `jid` field (the current client ignores it, the 2021 one used it).
    pub jid: Option<String>,
    /// The pubsub node to `enable`.
    pub node: String,
    /// The secret for the publish options.
    pub secret: String,
}

/// Reads the answer to [`register_push_fcm`] as Conversations does: it must be a result from
/// exactly `app_server` (the IQ layer matches `from` against the request's `to`) with a
/// `<command>` holding a form whose `node` and `secret` are not empty.
pub fn read_push_registration(
    answer: &Element,
    app_server: &str,
) -> Result<PushRegistration, String> {
    let text = String::from(answer);
    if answer.attr("from") != Some(app_server) {
        return Err(format!("answer not from {app_server}: {text}"));
    }
    if answer.attr("type") != Some("result") {
        return Err(format!("not a result: {text}"));
    }
    let form = answer
        .get_child("command", NS_COMMANDS)
        .and_then(|command| command.get_child("x", NS_DATA))
        .ok_or_else(|| format!("no command with a form: {text}"))?;
    let node = form_value(form, "node").filter(|v| !v.is_empty());
    let secret = form_value(form, "secret").filter(|v| !v.is_empty());
    match (node, secret) {
        (Some(node), Some(secret)) => Ok(PushRegistration {
            jid: form_value(form, "jid"),
            node,
            secret,
        }),
        _ => Err(format!("Missing node or secret in response: {text}")),
    }
}

/// The first `<value/>` of field `var` in a data form.
pub fn form_value(form: &Element, var: &str) -> Option<String> {
    form.children()
        .filter(|child| child.is("field", NS_DATA))
        .find(|field| field.attr("var") == Some(var))
        .and_then(|field| field.get_child("value", NS_DATA))
        .map(Element::text)
}

/// The distributor's registration (`UnifiedPushManager`): `application` and `instance` are
/// [`up_hash`]es.
pub fn up_register(provider: &str, application: &str, instance: &str) -> Element {
    iq(
        "set",
        provider,
        element(
            "register",
            NS_UP,
            &[("application", application), ("instance", instance)],
        ),
    )
}

/// What `<registered/>` gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpRegistered {
    /// The endpoint URL for the app server.
    pub endpoint: String,
    /// The expiration as written.
    pub expiration: String,
}

/// Reads the answer to [`up_register`] as Conversations does: a result with `<registered/>`,
/// a non-empty `endpoint`, and an `expiration` Conversations' parser takes (`Z` or `+hhmm`
/// as the zone; `+00:00` fails).
pub fn read_up_registered(answer: &Element, provider: &str) -> Result<UpRegistered, String> {
    let text = String::from(answer);
    if answer.attr("from") != Some(provider) || answer.attr("type") != Some("result") {
        return Err(format!("not a result from {provider}: {text}"));
    }
    let registered = answer
        .get_child("registered", NS_UP)
        .ok_or_else(|| format!("no <registered/>: {text}"))?;
    let endpoint = registered
        .attr("endpoint")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| format!("no endpoint: {text}"))?;
    let expiration = registered
        .attr("expiration")
        .ok_or_else(|| format!("no expiration: {text}"))?;
    if !(expiration.ends_with('Z') || conversations_zone(expiration)) {
        return Err(format!(
            "expiration Conversations cannot parse: {expiration}"
        ));
    }
    Ok(UpRegistered {
        endpoint: endpoint.to_owned(),
        expiration: expiration.to_owned(),
    })
}

/// `AbstractParser.getTimestamp` takes the last five characters as `+hhmm`.
fn conversations_zone(timestamp: &str) -> bool {
    let zone = timestamp.as_bytes();
    zone.len() > 5 && {
        let tail = &zone[zone.len() - 5..];
        matches!(tail[0], b'+' | b'-') && tail[1..].iter().all(u8::is_ascii_digit)
    }
}

/// Available presence directed to the push provider, which Conversations sends on every bind
/// when it has endpoints there.
pub fn directed_presence(to: &str) -> Element {
    element("presence", NS_CLIENT, &[("to", to)])
}

/// A `<push/>` as Conversations reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpPushIq {
    /// The IQ's `from`.
    pub from: String,
    /// The IQ's `to`.
    pub to: String,
    /// `application`.
    pub application: String,
    /// `instance`.
    pub instance: String,
    /// The text: standard padded base64 of the body.
    pub content: String,
}

/// Reads an incoming IQ set carrying `<push/>`; `None` for any other element.
pub fn read_up_push(stanza: &Element) -> Option<UpPushIq> {
    if !stanza.is("iq", NS_CLIENT) || stanza.attr("type") != Some("set") {
        return None;
    }
    let push = stanza.get_child("push", NS_UP)?;
    Some(UpPushIq {
        from: stanza.attr("from").unwrap_or_default().to_owned(),
        to: stanza.attr("to").unwrap_or_default().to_owned(),
        application: push.attr("application").unwrap_or_default().to_owned(),
        instance: push.attr("instance").unwrap_or_default().to_owned(),
        content: push.text(),
    })
}

/// Decodes the text of a `<push/>` the way Conversations accepts it (Guava's
/// `BaseEncoding.base64()`: standard alphabet, padding required, no line breaks).
pub fn decode_push_content(content: &str) -> Option<Vec<u8>> {
    STANDARD.decode(content).ok()
}

/// An error answer to an IQ request, e.g. `item-not-found` (cancel) when Conversations no
/// longer knows the push's application.
pub fn iq_error_to(request: &Element, error_type: &str, condition: &str) -> Element {
    let mut answer = element("iq", NS_CLIENT, &[("type", "error")]);
    if let Some(id) = request.attr("id") {
        set_attr(&mut answer, "id", id);
    }
    if let Some(from) = request.attr("from") {
        set_attr(&mut answer, "to", from);
    }
    let mut error = element("error", NS_CLIENT, &[("type", error_type)]);
    error.append_child(Element::bare(condition, NS_STANZAS));
    answer.append_child(error);
    answer
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn account_fingerprint_matches_the_p2_readme() {
        assert_eq!(
            account_fingerprint("xiaomia1@jabber.de", "92afd7a91cdba9a0"),
            "ec164939a8485ee6b7f7871071a11c7bb18aead5"
        );
    }

    #[test]
    fn up_hash_is_44_characters_of_padded_base64() {
        let hash = up_hash("0b9e4c5e-uuid", "org.example.app");
        assert_eq!(hash.len(), 44);
        assert!(hash.ends_with('='));
        assert_eq!(STANDARD.decode(&hash).unwrap().len(), 32);
    }

    #[test]
    fn register_stanza_has_no_form_type_and_untyped_fields() {
        let stanza = register_push_fcm("p2.example", "TOKEN", "ANDROID");
        let command = stanza.get_child("command", NS_COMMANDS).unwrap();
        assert_eq!(command.attr("node"), Some("register-push-fcm"));
        assert_eq!(command.attr("action"), Some("execute"));
        let form = command.get_child("x", NS_DATA).unwrap();
        assert_eq!(form.attr("type"), Some("submit"));
        assert_eq!(form_value(form, "token").as_deref(), Some("TOKEN"));
        assert_eq!(form_value(form, "android-id").as_deref(), Some("ANDROID"));
        assert_eq!(form_value(form, "FORM_TYPE"), None);
        assert!(form.children().all(|f| f.attr("type").is_none()));
    }

    #[test]
    fn expiration_zones_are_read_as_conversations_does() {
        assert!(conversations_zone("2026-11-22T23:34:12+0000"));
        assert!(!conversations_zone("2026-11-22T23:34:12+00:00"));
    }
}
