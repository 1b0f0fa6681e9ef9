//! The two stanzas the link receives most, read straight from their bytes: the empty IQ result
//! (a client's answer to a push, a server's answer to a ping) and the XEP-0357 publish (one per
//! wake-up). Everything else, and any variant of these outside the plain subset of
//! `fast_xml`, goes to the full parser; the tests check that both readings agree.

use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ns;

use crate::stream::fast_xml::{Plain, Tag, Token, Tokenizer, Unusual, decode, skip_element};
use crate::link::handler::PushPublish;

/// A stanza read by this module.
#[derive(Debug, PartialEq)]
pub(crate) enum FastStanza {
    /// `<iq type='result'/>` without payload.
    EmptyResult {
        id: String,
        from: Option<Jid>,
        to: Option<Jid>,
    },
    /// An IQ set whose only child is a pubsub element with a publish in it.
    Publish {
        request: IqAddress,
        publish: PushPublish,
    },
}

/// The addressing of an IQ request.
#[derive(Debug, PartialEq)]
pub(crate) struct IqAddress {
    pub id: String,
    pub from: Option<Jid>,
    pub to: Option<Jid>,
}

impl From<IqAddress> for IqHeader {
    fn from(IqAddress { id, from, to }: IqAddress) -> Self {
        IqHeader { from, to, id }
    }
}

/// Reads `stanza` when it is one of the shapes above in plain XML; `publishes` says whether
/// publishes are wanted (the handler reads them this way).
pub(crate) fn read(
    stanza: &[u8],
    publishes: bool,
    max_attribute_bytes: usize,
) -> Option<FastStanza> {
    // Cheap test before any work: only IQs qualify.
    if !stanza.starts_with(b"<iq ") {
        return None;
    }
    read_iq(stanza, publishes, max_attribute_bytes).ok()
}

fn read_iq(stanza: &[u8], publishes: bool, max_attribute_bytes: usize) -> Plain<FastStanza> {
    let mut tokens = Tokenizer::new(stanza, max_attribute_bytes)?;
    let Token::Start(iq) = tokens.next_token()? else {
        return Err(Unusual);
    };
    let attrs = IqAttrs::of(&iq)?;
    let read = match attrs.type_ {
        "result" => {
            if !iq.empty && !matches!(tokens.next_token()?, Token::End("iq")) {
                return Err(Unusual);
            }
            FastStanza::EmptyResult {
                id: attrs.id,
                from: attrs.from,
                to: attrs.to,
            }
        }
        "set" if publishes && !iq.empty => {
            let Token::Start(pubsub) = tokens.next_token()? else {
                return Err(Unusual);
            };
            if pubsub.name != "pubsub" || pubsub.namespace(ns::COMPONENT) != ns::PUBSUB {
                return Err(Unusual);
            }
            let publish = if pubsub.empty {
                None
            } else {
                read_pubsub(&mut tokens)?
            };
            // Exactly one child in the IQ, and nothing after it.
            if !matches!(tokens.next_token()?, Token::End("iq")) {
                return Err(Unusual);
            }
            // Without a `<publish/>` it is another pubsub request: the full path answers it.
            let publish = publish.ok_or(Unusual)?;
            FastStanza::Publish {
                request: IqAddress {
                    id: attrs.id,
                    from: attrs.from,
                    to: attrs.to,
                },
                publish,
            }
        }
        _ => return Err(Unusual),
    };
    if tokens.at_end() {
        Ok(read)
    } else {
        Err(Unusual)
    }
}

/// The attributes of an `<iq/>` as the stanza parser takes them.
struct IqAttrs<'a> {
    type_: &'a str,
    id: String,
    from: Option<Jid>,
    to: Option<Jid>,
}

impl<'a> IqAttrs<'a> {
    fn of(iq: &Tag<'a>) -> Plain<Self> {
        if iq.name != "iq" {
            return Err(Unusual);
        }
        let (mut type_, mut id, mut from, mut to) = (None, None, None, None);
        for &(name, value) in iq.attrs() {
            match name {
                "type" => type_ = Some(value),
                "id" => id = Some(decode(value).into_owned()),
                "from" => from = Some(jid(value)?),
                "to" => to = Some(jid(value)?),
                // Prosody stamps `xml:lang` on what clients send; the stanza parser ignores it.
                "xml:lang" => (),
                // Includes `xmlns`: an IQ in another namespace is not a component stanza.
                _ => return Err(Unusual),
            }
        }
        Ok(Self {
            type_: type_.ok_or(Unusual)?,
            id: id.ok_or(Unusual)?,
            from,
            to,
        })
    }
}

fn jid(raw: &str) -> Plain<Jid> {
    Jid::new(&decode(raw)).map_err(|_| Unusual)
}

/// Reads the children of `<pubsub/>` as the app server does: the first `<publish/>`'s node,
/// and the secret from the first form of the first `<publish-options/>` (XEP-0357 §5). `None`
/// when there is no publish.
fn read_pubsub(tokens: &mut Tokenizer<'_>) -> Plain<Option<PushPublish>> {
    let mut publish: Option<PushPublish> = None;
    let mut secret = None;
    let mut options_seen = false;
    read_children(tokens, "pubsub", |tokens, tag| {
        let is_pubsub = tag.namespace(ns::PUBSUB) == ns::PUBSUB;
        if is_pubsub && tag.name == "publish" && publish.is_none() {
            publish = Some(PushPublish {
                node: tag.attr("node").map(|node| decode(node).into_owned()),
                secret: None,
            });
            skip_rest(tokens, tag)
        } else if is_pubsub && tag.name == "publish-options" && !options_seen {
            options_seen = true;
            if !tag.empty {
                secret = read_publish_options(tokens)?;
            }
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(publish.map(|publish| PushPublish { secret, ..publish }))
}

/// Reads the children of the open element `parent` up to its end tag: `child` gets each child's
/// start tag and reads the child whole (or calls [`skip_rest`]); text between them is passed
/// over. Any other end tag is a document the fast reader leaves to the full parser.
fn read_children<'a>(
    tokens: &mut Tokenizer<'a>,
    parent: &str,
    mut child: impl FnMut(&mut Tokenizer<'a>, &Tag<'a>) -> Plain<()>,
) -> Plain<()> {
    loop {
        match tokens.next_token()? {
            Token::Start(tag) => child(tokens, &tag)?,
            Token::End(name) if name == parent => return Ok(()),
            Token::End(_) => return Err(Unusual),
            Token::Text(_) => (),
        }
    }
}

fn skip_rest(tokens: &mut Tokenizer<'_>, tag: &Tag<'_>) -> Plain<()> {
    if tag.empty {
        Ok(())
    } else {
        skip_element(tokens, tag.name)
    }
}

/// The `secret` of the first data form in `<publish-options/>`.
fn read_publish_options(tokens: &mut Tokenizer<'_>) -> Plain<Option<String>> {
    let mut secret = None;
    let mut form_seen = false;
    read_children(tokens, "publish-options", |tokens, tag| {
        if !form_seen && tag.name == "x" && tag.namespace(ns::PUBSUB) == ns::DATA_FORMS {
            form_seen = true;
            if !tag.empty {
                secret = read_form(tokens)?;
            }
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(secret)
}

/// The first value of the fields named `secret` (a field without a value is passed over).
fn read_form(tokens: &mut Tokenizer<'_>) -> Plain<Option<String>> {
    let mut secret = None;
    read_children(tokens, "x", |tokens, tag| {
        let wanted = secret.is_none()
            && tag.name == "field"
            && tag.namespace(ns::DATA_FORMS) == ns::DATA_FORMS
            && tag.attr("var").is_some_and(|var| decode(var) == "secret");
        if wanted && !tag.empty {
            secret = read_field(tokens)?;
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(secret)
}

/// The text of the field's first `<value/>`, if it has one.
fn read_field(tokens: &mut Tokenizer<'_>) -> Plain<Option<String>> {
    let mut value = None;
    read_children(tokens, "field", |tokens, tag| {
        let wanted = value.is_none()
            && tag.name == "value"
            && tag.namespace(ns::DATA_FORMS) == ns::DATA_FORMS;
        if wanted {
            value = Some(if tag.empty {
                String::new()
            } else {
                read_text(tokens)?
            });
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(value)
}

/// The character data directly inside `<value/>` (text in child elements does not count).
fn read_text(tokens: &mut Tokenizer<'_>) -> Plain<String> {
    let mut text = String::new();
    loop {
        match tokens.next_token()? {
            Token::Start(tag) => skip_rest(tokens, &tag)?,
            Token::End("value") => return Ok(text),
            Token::End(_) => return Err(Unusual),
            Token::Text(raw) => text.push_str(&decode(raw)),
        }
    }
}

#[cfg(test)]
#[path = "fast_stanza_tests.rs"]
mod tests;
