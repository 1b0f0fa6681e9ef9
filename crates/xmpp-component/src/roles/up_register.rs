//! The UnifiedPush `<register/>` (docs/protocol.md A.3): an endpoint for a client's application.

use pushgate_core::provider::{Provider, UpRegisterError};
use pushgate_core::unified_push::iso8601_utc;
use rxml::xml_ncname;
use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::UNIFIED_PUSH;
use crate::link::handler::IqReply;

/// Why a registration got no endpoint.
#[derive(Debug, thiserror::Error)]
enum RegisterFault {
    #[error("a registration must be an IQ set")]
    NotASet,
    #[error("the sender is not a full JID")]
    NotAFullJid,
    #[error(transparent)]
    Refused(#[from] UpRegisterError),
}

impl RegisterFault {
    /// The `outcome` of the registration metric.
    fn label(&self) -> &'static str {
        match self {
            Self::NotASet
            | Self::NotAFullJid
            | Self::Refused(UpRegisterError::BadId { .. } | UpRegisterError::Seal(_)) => {
                "bad_request"
            }
            Self::Refused(UpRegisterError::DomainNotAllowed) => "domain_not_allowed",
        }
    }

    /// The one place where the provider's refusals become stanza errors.
    fn reply(&self) -> IqReply {
        let (type_, condition) = match self {
            Self::NotASet
            | Self::NotAFullJid
            | Self::Refused(UpRegisterError::BadId { .. } | UpRegisterError::Seal(_)) => {
                (ErrorType::Modify, DefinedCondition::BadRequest)
            }
            Self::Refused(UpRegisterError::DomainNotAllowed) => {
                (ErrorType::Auth, DefinedCondition::Forbidden)
            }
        };
        IqReply::error(type_, condition)
    }
}

/// Answers a `<register xmlns='http://gultsch.de/xmpp/drafts/unified-push'/>` request.
pub(crate) fn handle(
    provider: &Provider,
    request: &IqHeader,
    is_set: bool,
    register: &Element,
) -> IqReply {
    match run(provider, request, is_set, register) {
        Ok(registered) => {
            crate::metrics::up_registration("registered");
            IqReply::result(registered)
        }
        Err(fault) => {
            crate::metrics::up_registration(fault.label());
            tracing::debug!(reason = %fault, "UnifiedPush registration refused");
            fault.reply()
        }
    }
}

fn run(
    provider: &Provider,
    request: &IqHeader,
    is_set: bool,
    register: &Element,
) -> Result<Element, RegisterFault> {
    if !is_set {
        return Err(RegisterFault::NotASet);
    }
    // The owner is the full JID: pushes go to exactly the resource that registered
    // (docs/protocol.md B §5 trap 10).
    let owner = request
        .from
        .as_ref()
        .filter(|from| from.is_full())
        .ok_or(RegisterFault::NotAFullJid)?;
    let registration = provider.register(
        owner.as_str(),
        owner.domain().as_str(),
        register.attr("application").unwrap_or_default(),
        register.attr("instance").unwrap_or_default(),
    )?;
    // Conversations parses only a `Z` zone (docs/protocol.md B §5 trap 11); iso8601_utc writes one.
    Ok(Element::builder("registered", UNIFIED_PUSH)
        .attr(xml_ncname!("endpoint").to_owned(), registration.endpoint)
        .attr(
            xml_ncname!("expiration").to_owned(),
            iso8601_utc(registration.expires_at),
        )
        .build())
}
