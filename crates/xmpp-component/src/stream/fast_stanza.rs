//! The stanza the link receives most, read straight from its bytes: the empty IQ result (a
//! client's answer to a push, a server's answer to a ping). An IQ set is read up to its only
//! child, which a role may take from there (the link's fast-path hook); everything else, and
//! any variant outside the plain subset of `fast_xml`, goes to the full parser.

use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::jid::Jid;

use crate::stream::fast_xml::{Plain, Tag, Token, Tokenizer, Unusual, decode, skip_element};

/// A stanza read by this module; `T` is what the caller's reader made of an IQ set.
#[derive(Debug, PartialEq)]
pub(crate) enum FastStanza<T> {
    /// `<iq type='result'/>` without payload.
    EmptyResult {
        id: String,
        from: Option<Jid>,
        to: Option<Jid>,
    },
    /// An IQ set whose only child the caller's reader took.
    Request(T),
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

/// An IQ set read up to the start tag of its first child: what a fast-path reader of the layer
/// above gets. [`Self::read`] reads the child and checks that nothing follows it.
pub struct IqSetChild<'t, 'x> {
    request: IqAddress,
    tokens: &'t mut Tokenizer<'x>,
    child: Tag<'x>,
}

impl<'x> IqSetChild<'_, 'x> {
    /// The child's start tag (its namespace defaults to the stream's, `jabber:component:accept`).
    pub(crate) fn child(&self) -> &Tag<'x> {
        &self.child
    }

    /// Reads the child with `read` (given the tokens after its start tag, and the tag), then
    /// checks that it is the IQ's only child; `None` leaves the stanza to the full parser.
    pub(crate) fn read<R>(
        self,
        read: impl FnOnce(&mut Tokenizer<'x>, &Tag<'x>) -> Plain<Option<R>>,
    ) -> Option<(IqAddress, R)> {
        let Self {
            request,
            tokens,
            child,
        } = self;
        let read = read(tokens, &child).ok()??;
        // Exactly one child in the IQ, and nothing after it.
        if !matches!(tokens.next_token(), Ok(Token::End("iq"))) || !tokens.at_end() {
            return None;
        }
        Some((request, read))
    }
}

/// Reads `stanza` when it is an empty IQ result in plain XML, or an IQ set whose only child
/// `take_set` takes.
pub(crate) fn read<T>(
    stanza: &[u8],
    max_attribute_bytes: usize,
    take_set: &mut impl FnMut(IqSetChild<'_, '_>) -> Option<T>,
) -> Option<FastStanza<T>> {
    // Cheap test before any work: only IQs qualify.
    if !stanza.starts_with(b"<iq ") {
        return None;
    }
    read_iq(stanza, max_attribute_bytes, take_set).ok()
}

fn read_iq<T>(
    stanza: &[u8],
    max_attribute_bytes: usize,
    take_set: &mut impl FnMut(IqSetChild<'_, '_>) -> Option<T>,
) -> Plain<FastStanza<T>> {
    let mut tokens = Tokenizer::new(stanza, max_attribute_bytes)?;
    let Token::Start(iq) = tokens.next_token()? else {
        return Err(Unusual);
    };
    let attrs = IqAttrs::of(&iq)?;
    match attrs.type_ {
        "result" => {
            if !iq.empty && !matches!(tokens.next_token()?, Token::End("iq")) {
                return Err(Unusual);
            }
            if !tokens.at_end() {
                return Err(Unusual);
            }
            Ok(FastStanza::EmptyResult {
                id: attrs.id,
                from: attrs.from,
                to: attrs.to,
            })
        }
        "set" if !iq.empty => {
            let Token::Start(child) = tokens.next_token()? else {
                return Err(Unusual);
            };
            let request = IqAddress {
                id: attrs.id,
                from: attrs.from,
                to: attrs.to,
            };
            let set = IqSetChild {
                request,
                tokens: &mut tokens,
                child,
            };
            take_set(set).map(FastStanza::Request).ok_or(Unusual)
        }
        _ => Err(Unusual),
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

/// Reads the children of the open element `parent` up to its end tag: `child` gets each child's
/// start tag and reads the child whole (or calls [`skip_rest`]); text between them is passed
/// over. Any other end tag is a document the fast reader leaves to the full parser.
pub(crate) fn read_children<'a>(
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

/// Passes over the rest of the element whose start tag is `tag`.
pub(crate) fn skip_rest(tokens: &mut Tokenizer<'_>, tag: &Tag<'_>) -> Plain<()> {
    if tag.empty {
        Ok(())
    } else {
        skip_element(tokens, tag.name)
    }
}
