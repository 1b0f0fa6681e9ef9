//! The reader of a XEP-0357 publish straight from its bytes (the hot path): the node of the
//! first `<publish/>`, and the `secret` and `pushModule` of the first `<publish-options/>`
//! form, read as [`super::publish::read_publish`] reads them from an element tree.

use xmpp_parsers::ns;

use super::PushPublish;
use crate::stream::fast_stanza::{IqAddress, IqSetChild, read_children, skip_rest};
use crate::stream::fast_xml::{Plain, Token, Tokenizer, Unusual, decode};

/// Reads an IQ set whose only child is a `<pubsub/>` holding a `<publish/>`; `None` for any
/// other request, which then takes the full path.
pub(crate) fn read(set: IqSetChild<'_, '_>) -> Option<(IqAddress, PushPublish)> {
    let pubsub = set.child();
    if pubsub.name != "pubsub" || pubsub.namespace(ns::COMPONENT) != ns::PUBSUB {
        return None;
    }
    set.read(|tokens, pubsub| {
        if pubsub.empty {
            // Without a `<publish/>` it is another pubsub request: the full path answers it.
            return Ok(None);
        }
        read_pubsub(tokens)
    })
}

/// Reads the children of `<pubsub/>` as the app server does: the first `<publish/>`'s node,
/// and the options from the first form of the first `<publish-options/>` (XEP-0357 §5).
/// `None` when there is no publish.
fn read_pubsub(tokens: &mut Tokenizer<'_>) -> Plain<Option<PushPublish>> {
    let mut publish: Option<PushPublish> = None;
    let mut options = Options::default();
    let mut options_seen = false;
    read_children(tokens, "pubsub", |tokens, tag| {
        let is_pubsub = tag.namespace(ns::PUBSUB) == ns::PUBSUB;
        if is_pubsub && tag.name == "publish" && publish.is_none() {
            publish = Some(PushPublish {
                node: tag.attr("node").map(|node| decode(node).into_owned()),
                ..PushPublish::default()
            });
            skip_rest(tokens, tag)
        } else if is_pubsub && tag.name == "publish-options" && !options_seen {
            options_seen = true;
            if !tag.empty {
                options = read_publish_options(tokens)?;
            }
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(publish.map(|publish| PushPublish {
        secret: options.secret,
        push_module: options.push_module,
        ..publish
    }))
}

/// The fields of the publish options that are read.
#[derive(Default)]
struct Options {
    secret: Option<String>,
    push_module: Option<String>,
}

/// The options of the first data form in `<publish-options/>`.
fn read_publish_options(tokens: &mut Tokenizer<'_>) -> Plain<Options> {
    let mut options = Options::default();
    let mut form_seen = false;
    read_children(tokens, "publish-options", |tokens, tag| {
        if !form_seen && tag.name == "x" && tag.namespace(ns::PUBSUB) == ns::DATA_FORMS {
            form_seen = true;
            if !tag.empty {
                options = read_form(tokens)?;
            }
            Ok(())
        } else {
            skip_rest(tokens, tag)
        }
    })?;
    Ok(options)
}

/// The first value of the first field named `secret`, and of the first named `pushModule` (a
/// field without a value is passed over).
fn read_form(tokens: &mut Tokenizer<'_>) -> Plain<Options> {
    let mut options = Options::default();
    read_children(tokens, "x", |tokens, tag| {
        let field = tag.name == "field" && tag.namespace(ns::DATA_FORMS) == ns::DATA_FORMS;
        let var = tag.attr("var").filter(|_| field && !tag.empty).map(decode);
        let slot = match var.as_deref() {
            Some("secret") if options.secret.is_none() => &mut options.secret,
            Some("pushModule") if options.push_module.is_none() => &mut options.push_module,
            _ => return skip_rest(tokens, tag),
        };
        *slot = read_field(tokens)?;
        Ok(())
    })?;
    Ok(options)
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
#[path = "publish_wire_tests.rs"]
mod tests;
