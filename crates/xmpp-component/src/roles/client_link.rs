//! The provider's way to its clients: each UnifiedPush message is an IQ `<push/>` from the
//! component's bare JID to the owner's full JID (docs/protocol.md A.3, B §2.4).

mod push_bytes;

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pushgate_core::bounded_cache::BoundedCache;
use pushgate_core::client_link::{ClientLink, PushDelivery, UpPush};
use rxml::xml_ncname;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::DefinedCondition;

use super::UNIFIED_PUSH;
use crate::link::component_link::ComponentLink;
use crate::link::error::IqError;

/// How long a client may take to answer a push by default: up's value (Babbler's default
/// response timeout, docs/protocol.md B §2.4).
pub const DEFAULT_PUSH_DEADLINE: Duration = Duration::from_secs(5);

/// [`XmppClientLink::attach`] was called twice.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("the client link is already attached to a component link")]
pub struct AlreadyAttached;

/// A [`ClientLink`] over a component link.
///
/// The provider owns its client link and the link's handler owns the provider, so this is
/// created first and attached once the link is spawned; until then every push is
/// [`PushDelivery::NotDelivered`] (and kept by the provider).
#[derive(Debug)]
pub struct XmppClientLink {
    link: OnceLock<ComponentLink>,
    deadline: Duration,
    /// Owners pushed to recently, parsed: an endpoint that gets messages often has its owner's
    /// JID checked and normalised once.
    owners: BoundedCache<Jid>,
}

/// How many parsed owner JIDs are kept: each costs about 100 bytes.
const KEPT_OWNERS: usize = 1024;

impl Default for XmppClientLink {
    fn default() -> Self {
        Self::new(DEFAULT_PUSH_DEADLINE)
    }
}

impl XmppClientLink {
    /// An unattached client link that waits up to `deadline` for each client's answer.
    pub fn new(deadline: Duration) -> Self {
        Self {
            link: OnceLock::new(),
            deadline,
            owners: BoundedCache::new(KEPT_OWNERS),
        }
    }

    /// Sends pushes through `link` from now on. The link's JID must be the component JID the
    /// clients registered with: Conversations matches the push's `from` exactly and answers
    /// `item-not-found` otherwise (docs/protocol.md B §5 trap 12).
    pub fn attach(&self, link: ComponentLink) -> Result<(), AlreadyAttached> {
        self.link.set(link).map_err(|_| AlreadyAttached)
    }

    /// The link pushes go through, once attached.
    pub fn link(&self) -> Option<&ComponentLink> {
        self.link.get()
    }

    /// How long a client may take to answer.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    fn owner_jid(&self, owner: &str) -> Option<Jid> {
        if let Some(jid) = self.owners.get(owner) {
            return Some(jid);
        }
        let jid = Jid::new(owner).ok()?;
        self.owners.insert(owner, &jid);
        Some(jid)
    }
}

#[async_trait]
impl ClientLink for XmppClientLink {
    async fn push(&self, push: UpPush<'_>) -> PushDelivery {
        let Some(link) = self.link.get() else {
            return PushDelivery::NotDelivered("link not started".to_owned());
        };
        let Some(owner) = self.owner_jid(push.owner) else {
            // Tokens are sealed from parsed JIDs, so only a foreign key could produce this.
            return PushDelivery::NotDelivered("the owner is not a JID".to_owned());
        };
        let id = link.next_iq_id();
        let answer = match push_bytes::push_iq_bytes(link.address(), &owner, &id, &push) {
            Some(iq) => link.send_encoded_iq(id, owner, iq, self.deadline).await,
            None => {
                let iq = push_iq(link.address().clone(), owner, &push);
                link.send_iq(iq, self.deadline).await
            }
        };
        // Counted and timed by the provider, which sends every push through here.
        classify(answer)
    }
}

/// `<iq type='set' from=component to=owner><push application instance>BASE64</push></iq>`;
/// the id is assigned by [`ComponentLink::send_iq`].
fn push_iq(component: Jid, owner: Jid, push: &UpPush<'_>) -> Iq {
    let mut payload = Element::builder("push", UNIFIED_PUSH)
        .attr(xml_ncname!("application").to_owned(), push.application)
        .attr(xml_ncname!("instance").to_owned(), push.instance)
        .build();
    // Standard padded base64 without line breaks, or Conversations answers item-not-found
    // (docs/protocol.md B §5 trap 12); an empty body is an empty element.
    if !push.body.is_empty() {
        payload.append_text(STANDARD.encode(push.body));
    }
    Iq::Set {
        from: Some(component),
        to: Some(owner),
        id: String::new(),
        payload,
    }
}

/// What the client's answer means (docs/protocol.md A.3): only `item-not-found` and
/// `feature-not-implemented` revoke; an offline resource gets `service-unavailable` from the
/// user's server, which is worth trying again later.
fn classify(answer: Result<Iq, IqError>) -> PushDelivery {
    match answer {
        Ok(Iq::Result { .. }) => PushDelivery::Delivered,
        Ok(Iq::Error { error, .. }) => match error.defined_condition {
            DefinedCondition::ItemNotFound | DefinedCondition::FeatureNotImplemented => {
                PushDelivery::Revoked
            }
            other => PushDelivery::NotDelivered(format!("the client answered {other:?}")),
        },
        Ok(Iq::Get { .. } | Iq::Set { .. }) => {
            PushDelivery::NotDelivered("a request instead of an answer".to_owned())
        }
        Err(error) => PushDelivery::NotDelivered(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_standard_padded_base64() {
        let push = UpPush {
            owner: "alice@example.test/phone",
            application: "app",
            instance: "inst",
            body: b"hello-up-payload",
            endpoint_token: "",
        };
        let component = Jid::new("up.example.test").expect("JID");
        let owner = Jid::new(push.owner).expect("JID");
        let Iq::Set { payload, from, .. } = push_iq(component.clone(), owner, &push) else {
            panic!("not a set");
        };
        assert_eq!(from, Some(component));
        assert_eq!(payload.text(), "aGVsbG8tdXAtcGF5bG9hZA==");
        let empty = UpPush { body: b"", ..push };
        let Iq::Set { payload, .. } = push_iq(
            Jid::new("up.example.test").expect("JID"),
            Jid::new("a@b/c").expect("JID"),
            &empty,
        ) else {
            panic!("not a set");
        };
        assert_eq!(payload.nodes().count(), 0);
    }

    #[test]
    fn timeouts_and_link_failures_are_not_delivered() {
        for error in [IqError::Timeout, IqError::LinkDown] {
            assert!(matches!(
                classify(Err(error)),
                PushDelivery::NotDelivered(_)
            ));
        }
    }
}
