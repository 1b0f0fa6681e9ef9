//! The `<push/>` IQ written straight as bytes. Its base64 body is most of every UnifiedPush
//! message, and the generic serialiser escapes it byte by byte although the base64 alphabet
//! never needs escaping. The bytes are exactly those the generic serialiser produces (checked
//! against it in the tests); values it would refuse are left to it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use pushgate_core::client_link::UpPush;
use xmpp_parsers::jid::Jid;

use super::super::UNIFIED_PUSH;
use crate::stream::short_answer::{is_xml_text, put_escaped};

/// `<iq type='set' from=component to=owner id=id><push xmlns application instance>BASE64
/// </push></iq>` as the serialiser writes it, or `None` when an address, the id or an
/// attribute holds a character XML cannot carry (the generic path decides what to do then).
pub(super) fn push_iq_bytes(
    component: &Jid,
    owner: &Jid,
    id: &str,
    push: &UpPush<'_>,
) -> Option<Bytes> {
    let (from, to) = (component.as_str(), owner.as_str());
    if ![from, to, id, push.application, push.instance]
        .into_iter()
        .all(is_xml_text)
    {
        return None;
    }
    let body_len = base64::encoded_len(push.body.len(), true)?;
    // Room for everything when nothing needs escaping, which is the usual case.
    let mut out = BytesMut::with_capacity(
        160 + from.len()
            + to.len()
            + id.len()
            + push.application.len()
            + push.instance.len()
            + body_len,
    );
    out.put_slice(b"<iq type='set' from='");
    put_escaped(from, &mut out);
    out.put_slice(b"' to='");
    put_escaped(to, &mut out);
    out.put_slice(b"' id='");
    put_escaped(id, &mut out);
    out.put_slice(b"'><push xmlns='");
    out.put_slice(UNIFIED_PUSH.as_bytes());
    out.put_slice(b"' application='");
    put_escaped(push.application, &mut out);
    out.put_slice(b"' instance='");
    put_escaped(push.instance, &mut out);
    out.put_slice(b"'>");
    // Standard padded base64 without line breaks (docs/protocol.md B §5 trap 12), straight into the
    // stanza: its alphabet (A-Z a-z 0-9 + / =) needs no escaping in XML text.
    let start = out.len();
    out.resize(start + body_len, 0);
    let written = STANDARD.encode_slice(push.body, &mut out[start..]).ok()?;
    out.truncate(start + written);
    out.put_slice(b"</push></iq>");
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use xmpp_parsers::stanza::Stanza;

    use super::super::push_iq;
    use super::*;
    use crate::stream::writer::StanzaEncoder;

    fn generic(component: &Jid, owner: &Jid, id: &str, push: &UpPush<'_>) -> Vec<u8> {
        let mut iq = push_iq(component.clone(), owner.clone(), push);
        *iq.id_mut() = id.to_owned();
        let mut out = BytesMut::new();
        StanzaEncoder::new()
            .encode_generic(&Stanza::Iq(iq), &mut out)
            .expect("the generic serialiser takes it");
        out.to_vec()
    }

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("JID")
    }

    /// Bodies of every length around the base64 padding boundaries, every byte value, and the
    /// sizes UnifiedPush allows.
    fn bodies() -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = (0..8).map(|n| (0..n).collect()).collect();
        bodies.push((0..=255).collect());
        bodies.push(b"<>&'\"\t\n\r]]>".to_vec());
        bodies.extend([3000, 4095, 4096].map(|n| {
            (0..n)
                .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect()
        }));
        bodies
    }

    #[test]
    fn the_bytes_are_the_generic_serialisers() {
        let components = [jid("up.example.test"), jid("push.xn--bcher-kva.example")];
        let owners = [
            jid("alice@example.test/phone"),
            jid("alice@example.test"),
            jid("example.test"),
            jid("a.b@example.test/r'&<>\"x\u{e9}\u{4e2d} "),
            jid("\u{e9}l\u{e8}ve@\u{e9}cole.example/t\u{e9}l\u{e9}phone"),
        ];
        let ids = ["pg1.0", "pg1.18446744073709551615", "", "i'd&<>\"\t\n\r"];
        let ids_app_inst = [
            (
                "Vm0wd2QyUXlVWGxWV0d4V1YwZDRWMVl3WkRSV01WbDNXa1JTVjAxV2JETlhhMUpUVmpBeFYySkVUbGhoTVVwVVZtcEJlRll5U2tWVQ==",
                "c29tZS1pbnN0YW5jZS1pZC0zMi1ieXRlcy1sb25nISE=",
            ),
            ("app", "inst"),
            ("", ""),
            ("ap'p\"<>&\t\n\r", "\u{e9}\u{4e2d}&amp;"),
        ];
        let mut checked = 0;
        for component in &components {
            for owner in &owners {
                for id in ids {
                    for (application, instance) in ids_app_inst {
                        for body in bodies() {
                            let push = UpPush {
                                owner: owner.as_str(),
                                application,
                                instance,
                                body: &body,
                                endpoint_token: "",
                            };
                            let fast = push_iq_bytes(component, owner, id, &push)
                                .expect("plain values take the fast path");
                            assert_eq!(
                                fast,
                                generic(component, owner, id, &push),
                                "{owner} {id:?} {application:?} {body:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 5 * 4 * 4 * bodies().len());
    }

    #[test]
    fn values_xml_cannot_carry_take_the_generic_path() {
        let component = jid("up.example.test");
        let owner = jid("alice@example.test/phone");
        let plain = UpPush {
            owner: owner.as_str(),
            application: "app",
            instance: "inst",
            body: b"hello",
            endpoint_token: "",
        };
        assert!(push_iq_bytes(&component, &owner, "pg1.0", &plain).is_some());
        for bad in ["nul\u{0}", "bell\u{7}", "\u{FFFE}", "\u{FFFF}", "esc\u{1b}"] {
            let with_application = UpPush {
                application: bad,
                ..plain
            };
            let with_instance = UpPush {
                instance: bad,
                ..plain
            };
            assert_eq!(
                push_iq_bytes(&component, &owner, "pg1.0", &with_application),
                None
            );
            assert_eq!(
                push_iq_bytes(&component, &owner, "pg1.0", &with_instance),
                None
            );
            assert_eq!(push_iq_bytes(&component, &owner, bad, &plain), None);
            // The generic path refuses them too: declining changes nothing on the wire.
            for (id, push) in [
                ("pg1.0", with_application),
                ("pg1.0", with_instance),
                (bad, plain),
            ] {
                let mut iq = push_iq(component.clone(), owner.clone(), &push);
                *iq.id_mut() = id.to_owned();
                let mut out = BytesMut::new();
                let encoded = StanzaEncoder::new().encode_generic(&Stanza::Iq(iq), &mut out);
                assert!(encoded.is_err() && out.is_empty(), "{bad:?}");
            }
        }
    }
}
