//! The fast readers against the full parser: wherever the fast reader (the stream's reader of
//! empty results, with the app server's publish reader as its hook) takes a stanza, both must
//! read the same thing.

use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;

use super::super::PushPublish;
use crate::config::XmlLimits;
use crate::stream::fast_stanza::{self, IqAddress};
use crate::stream::inbound::Inbound;
use crate::stream::stanza_parser::StanzaParser;

/// A stanza read fast, in the terms the full parser's reading is compared in.
#[derive(Debug, PartialEq)]
enum FastStanza {
    EmptyResult {
        id: String,
        from: Option<Jid>,
        to: Option<Jid>,
    },
    Publish {
        request: IqAddress,
        publish: PushPublish,
    },
}

/// The stream's fast reader with the app server's publish reader as its hook when `publishes`.
fn read(stanza: &[u8], publishes: bool, max_attribute_bytes: usize) -> Option<FastStanza> {
    let mut take = |set: fast_stanza::IqSetChild<'_, '_>| {
        if publishes { super::read(set) } else { None }
    };
    fast_stanza::read(stanza, max_attribute_bytes, &mut take).map(|fast| match fast {
        fast_stanza::FastStanza::EmptyResult { id, from, to } => {
            FastStanza::EmptyResult { id, from, to }
        }
        fast_stanza::FastStanza::Request((request, publish)) => {
            FastStanza::Publish { request, publish }
        }
    })
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='push.example.test' id='s1'>";

/// What the full parser and the app server's reading of a pubsub tree make of `xml`, in the
/// fast reader's terms; `None` for anything else.
fn by_the_full_parser(xml: &str) -> Option<FastStanza> {
    let (mut parser, _) = StanzaParser::start(HEADER.as_bytes(), XmlLimits::default()).unwrap();
    let inbound = parser.read(xml.as_bytes(), XmlLimits::default()).ok()??;
    let Inbound::Element(XmppStreamElement::Stanza(Stanza::Iq(iq))) = inbound else {
        return None;
    };
    match iq {
        Iq::Result {
            from,
            to,
            id,
            payload: None,
        } => Some(FastStanza::EmptyResult { id, from, to }),
        Iq::Set {
            from,
            to,
            id,
            payload,
        } => {
            if !payload.is("pubsub", ns::PUBSUB) {
                return None;
            }
            let publish = super::super::publish::read_publish(&payload)?;
            Some(FastStanza::Publish {
                request: IqAddress { id, from, to },
                publish,
            })
        }
        _ => None,
    }
}

fn by_the_fast_reader(xml: &str) -> Option<FastStanza> {
    read(
        xml.as_bytes(),
        true,
        XmlLimits::default().max_attribute_bytes,
    )
}

/// Every case must read the same both ways when the fast reader takes it.
fn agree(cases: &[String]) -> usize {
    let mut taken = 0;
    for xml in cases {
        if let Some(fast) = by_the_fast_reader(xml) {
            taken += 1;
            assert_eq!(Some(&fast), by_the_full_parser(xml).as_ref(), "{xml}");
        }
    }
    taken
}

const PROSODY: &str = "<iq id='41f0de5fffea11e2840877d67373ee529587b7cb5f31d6c80aa8557860826be9' type='set' from='example.test' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'><x type='form' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='message-count' type='text-single'><value>1</value></field><field var='pending-subscription-count' type='text-single'/><field var='last-message-sender' type='jid-single'/><field var='last-message-body' type='text-single'><value>New Message!</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>";
const EJABBERD: &str = "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304241616-4070978284379159298-tGWXfBKzfdWSm9di9q6Ru1Wy4Ns=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='testnode'><item><notification xmlns='urn:xmpp:push:0'/></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t-device-token</value></field></x></publish-options></pubsub></iq>";
const EJABBERD_SUMMARY: &str = "<iq to='push.example.test' from='example.test' type='set' id='rr-1795304273846-995200286761437116-kdsE8Lz/Hj+FEMyKC4t8hbAytaE=-32189140'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='hibnode'><item><notification xmlns='urn:xmpp:push:0'><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:push:summary</value></field><field var='last-message-sender' type='jid-single' label='The sender of the last received message'><value>bob@example.test/16182854295944541736386</value></field><field var='last-message-body' type='text-single' label='The body text of the last received message'><value>New message</value></field></x></notification></item></publish><publish-options><x type='submit' xmlns='jabber:x:data'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>tok2</value></field></x></publish-options></pubsub></iq>";

#[test]
fn the_captured_publishes_are_read_fast_and_right() {
    for (xml, node, secret) in [
        (PROSODY, "testnode", "s3cr3t-device-token"),
        (EJABBERD, "testnode", "s3cr3t-device-token"),
        (EJABBERD_SUMMARY, "hibnode", "tok2"),
    ] {
        let Some(FastStanza::Publish { request, publish }) = by_the_fast_reader(xml) else {
            panic!("not read fast: {xml}");
        };
        assert_eq!(publish.node.as_deref(), Some(node));
        assert_eq!(publish.secret.as_deref(), Some(secret));
        assert_eq!(
            request.from.as_ref().map(|j| j.as_str()),
            Some("example.test")
        );
        assert_eq!(agree(&[xml.to_owned()]), 1);
    }
}

/// Monal's enable form, as Prosody copies it into the publish options (IOS-PUSH: the node is
/// the APNs token, `pushModule` the app).
const MONAL: &str = "<iq type='set' id='m1' from='example.test' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90'><item><notification xmlns='urn:xmpp:push:0'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pushModule'><value>monalProdiOS</value></field></x></publish-options></pubsub></iq>";

#[test]
fn a_monal_publish_is_read_fast_with_its_push_module() {
    let Some(FastStanza::Publish { publish, .. }) = by_the_fast_reader(MONAL) else {
        panic!("not read fast");
    };
    assert_eq!(
        publish.node.as_deref(),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );
    assert_eq!(publish.push_module.as_deref(), Some("monalProdiOS"));
    assert_eq!(publish.secret, None);
    assert_eq!(agree(&[MONAL.to_owned()]), 1);
}

#[test]
fn empty_results_read_as_the_full_parser_reads_them() {
    let cases = [
        "<iq type='result' id='up.7' from='a@example.test/phone' to='up.example.test'/>",
        "<iq type='result' id='p' from='example.test'></iq>",
        "<iq type='result' id='p'/>",
        "<iq type='result' id=''/>",
        "<iq type='result' id='w' from='example.test'> </iq>",
        "<iq type='result' id='c' from='example.test'><query xmlns='urn:x'/></iq>",
        "<iq type='result' id='t' from='example.test'>text</iq>",
        "<iq type='result' from='example.test'/>",
        "<iq type='result' id='b' from='@bad@/'/>",
        "<iq type='result' id='x' extra='1'/>",
        "<iq type='result' id='l' xml:lang='en'/>",
        "<iq type='result' to='push.example.test' xml:lang='en' id='c0f5b870.3731' from='alice@example.test/phone'/>",
        "<iq type='result' id='s' xml:space='preserve'/>",
        "<iq type='resulty' id='y'/>",
        "<iq type='result' id='a&amp;b&apos;c' from='example.test'/>",
        "<iq type=\"result\" id=\"dq\" from=\"example.test\"/>",
        "<iq  type = 'result'\n id='sp' />",
        "<iq xmlns='jabber:client' type='result' id='ns'/>",
        "<iq xmlns='jabber:component:accept' type='result' id='ns2'/>",
        "<iq type='get' id='g' from='example.test'><ping xmlns='urn:xmpp:ping'/></iq>",
    ]
    .map(str::to_owned);
    let taken = agree(&cases);
    assert!(taken >= 8, "only {taken} taken fast");
    // The common case is the expected stanza.
    let Some(FastStanza::EmptyResult { id, from, .. }) = by_the_fast_reader(&cases[0]) else {
        panic!("not read fast: {}", cases[0]);
    };
    assert_eq!(id, "up.7");
    assert_eq!(
        from.as_ref().map(|j| j.as_str()),
        Some("a@example.test/phone")
    );
    // Prosody's form of a client's answer to a push is taken fast.
    assert!(matches!(
        by_the_fast_reader(&cases[11]),
        Some(FastStanza::EmptyResult { .. })
    ));
}

#[test]
fn publish_variants_read_as_the_full_parser_reads_them() {
    let with = |inner: &str| {
        format!(
            "<iq type='set' id='v' from='example.test' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'>{inner}</pubsub></iq>"
        )
    };
    let form = |fields: &str| {
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>{fields}</x></publish-options>"
        )
    };
    let secret = "<field var='secret'><value>s</value></field>";
    let module = "<field var='pushModule'><value>monalProdiOS</value></field>";
    let mut cases = vec![
        with(&format!("<publish node='n'/>{}", form(secret))),
        with(&format!("<publish node='n'/>{}", form(module))),
        with(&format!(
            "<publish node='n'/>{}",
            form(&format!("{module}{secret}"))
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form(&format!(
                "<field var='pushModule'/>{secret}<field var='pushModule'><value>second</value></field>{module}"
            ))
        )),
        with("<publish node='n'/>"),
        with("<publish/>"),
        with(&format!("{}<publish node='n'/>", form(secret))),
        with(&format!(
            "<publish node='a'/><publish node='b'/>{}",
            form(secret)
        )),
        with(&format!(
            "<publish node='n'/>{}{}",
            form(secret),
            form("<field var='secret'><value>other</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secret'/><field var='secret'><value>second</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secret'><value/></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secret'><value>a<b>x</b>c</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secret'><value>a&amp;b</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secre&#116;'><value>x</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field var='secret'><value xmlns='urn:other'>x</value></field>")
        )),
        with(&format!(
            "<publish node='n'/>{}",
            form("<field xmlns='urn:other' var='secret'><value>x</value></field>")
        )),
        with(&format!(
            "<publish node='n'/><publish-options><x xmlns='urn:other'><field var='secret'><value>x</value></field></x>{}</publish-options>",
            "<x xmlns='jabber:x:data'><field var='secret'><value>y</value></field></x>"
        )),
        with(&format!(
            "<publish node='n'/><publish-options><x xmlns='jabber:x:data'/><x xmlns='jabber:x:data'>{secret}</x></publish-options>"
        )),
        with(&format!(
            "<publish xmlns='urn:other' node='x'/><publish node='n'/>{}",
            form(secret)
        )),
        with(&format!(
            " <publish node='n'> <item/> </publish> {} ",
            form(secret)
        )),
        with(&format!("<publish node='n&apos;q'/>{}", form(secret))),
        with(&format!("<subscribe node='n'/>{}", form(secret))),
        format!(
            "<iq type='get' id='g' from='example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub></iq>"
        ),
        format!(
            "<iq type='set' id='nf' to='push.example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/>{}</pubsub></iq>",
            form(secret)
        ),
        format!(
            "<iq type='set' id='two' from='example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub><x/></iq>"
        ),
        format!(
            "<iq type='set' id='t' from='example.test'> <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub></iq>"
        ),
        format!(
            "<iq type='set' id='ns' from='example.test'><pubsub xmlns='urn:other'><publish node='n'/></pubsub></iq>"
        ),
        format!(
            "<iq type='set' id='cd' from='example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/>{}</pubsub></iq>",
            form("<field var='secret'><value><![CDATA[x]]></value></field>")
        ),
    ];
    cases.push(PROSODY.replace("s3cr3t-device-token", "tok&lt;en&gt;"));
    let taken = agree(&cases);
    assert!(taken >= 15, "only {taken} taken fast");
    // A publish without `from` is still read fast; the app server refuses it.
    assert!(by_the_fast_reader(&cases[20]).is_some());
}

#[test]
fn nothing_but_iqs_and_nothing_malformed_is_taken() {
    for xml in [
        "<message type='chat' from='a@example.test/x'><body>hi</body></message>",
        "<presence from='a@example.test/x'/>",
        "<iq type='result' id='m'></iqq>",
        "<iq type='result' id='m'/><x/>",
        "<iq type='set' id='m' from='example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'></pubsub></publish></iq>",
        "<iq type='set' id='m' from='example.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub>",
    ] {
        assert_eq!(by_the_fast_reader(xml), None, "{xml}");
    }
}

#[test]
fn publishes_are_left_alone_unless_wanted() {
    assert_eq!(read(PROSODY.as_bytes(), false, 4096), None);
}

/// Mangled captures: wherever the fast reader still takes one, the full parser must read the
/// same (or refuse the stanza too... which the fast reader then must have refused as well).
#[test]
fn mangled_publishes_never_read_differently() {
    // A small deterministic generator; the point is many odd inputs, not randomness.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    const SIGNIFICANT: &[u8] = b"<>/'\"=&;: \nax-";
    let seeds = [PROSODY, EJABBERD, EJABBERD_SUMMARY];
    let (mut taken, mut tried) = (0, 0);
    for _ in 0..6000 {
        let mut bytes = seeds[next(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len());
            match next(3) {
                0 => bytes[at] = SIGNIFICANT[next(SIGNIFICANT.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, SIGNIFICANT[next(SIGNIFICANT.len())]),
            }
        }
        let Ok(xml) = String::from_utf8(bytes) else {
            continue;
        };
        tried += 1;
        if let Some(fast) = by_the_fast_reader(&xml) {
            taken += 1;
            assert_eq!(Some(&fast), by_the_full_parser(&xml).as_ref(), "{xml}");
        }
    }
    // Most single-byte changes break the XML or the shape; some keep both.
    assert!(tried > 5000 && taken > 100, "{taken} of {tried} taken");
}
