//! `register-push-*` and `unregister-push-*` (docs/protocol.md A.2): the form goes to
//! [`AppServer`], the outcome comes back as a completed command or a stanza error.

use pushgate_core::app_server::{AppServer, CommandError, RegisterCommand};
use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::commands::{self, CommandRequest, PushCommand};
use super::forms;
use crate::link::handler::IqReply;

/// Why a command got no completed answer.
#[derive(Debug, thiserror::Error)]
enum CommandFault {
    #[error("a command must be an IQ set")]
    NotASet,
    #[error("no such command node")]
    UnknownNode,
    #[error("only the execute action is supported")]
    UnsupportedAction,
    #[error("the command carries no form")]
    NoForm,
    #[error("the command has no sender")]
    NoSender,
    #[error(transparent)]
    Refused(#[from] CommandError),
}

impl CommandFault {
    /// The `outcome` of the command metric.
    fn label(&self) -> &'static str {
        match self {
            Self::NotASet | Self::UnsupportedAction | Self::NoForm | Self::NoSender => {
                "bad_request"
            }
            Self::UnknownNode => "unknown_node",
            Self::Refused(error) => match error {
                CommandError::MissingToken
                | CommandError::MissingDeviceId
                | CommandError::TokenTooLong
                | CommandError::BadToken => "bad_request",
                CommandError::MucUnsupported => "muc_unsupported",
                CommandError::UnknownDevice => "unknown_device",
                CommandError::TooManyDevices(_) => "too_many_devices",
                CommandError::Store(_) => "internal_error",
            },
        }
    }

    /// The one place where the app server's command failures become stanza errors. Our own
    /// failures get a `wait` type: ejabberd drops a push registration on any other
    /// (docs/protocol.md B §5 trap 5).
    fn reply(&self) -> IqReply {
        use DefinedCondition as C;
        use ErrorType as T;
        let (type_, condition) = match self {
            Self::NotASet | Self::UnsupportedAction | Self::NoForm | Self::NoSender => {
                (T::Modify, C::BadRequest)
            }
            Self::UnknownNode => (T::Cancel, C::ItemNotFound),
            Self::Refused(error) => match error {
                CommandError::MissingToken
                | CommandError::MissingDeviceId
                | CommandError::TokenTooLong
                | CommandError::BadToken => (T::Modify, C::BadRequest),
                CommandError::MucUnsupported => (T::Cancel, C::FeatureNotImplemented),
                CommandError::UnknownDevice => (T::Cancel, C::ItemNotFound),
                // A limit of the operator's, not a fault of ours: nothing to wait for.
                // Conversations does not retry after any error answer.
                CommandError::TooManyDevices(_) => (T::Modify, C::PolicyViolation),
                CommandError::Store(_) => (T::Wait, C::InternalServerError),
            },
        };
        IqReply::error(type_, condition)
    }
}

/// Runs a `<command/>` addressed to the component whose JID is `component`.
pub(crate) async fn execute(
    app_server: &AppServer,
    component: &BareJid,
    request: &IqHeader,
    is_set: bool,
    command: &Element,
) -> IqReply {
    let node = command
        .attr("node")
        .and_then(PushCommand::from_node)
        .map_or("unknown", PushCommand::node);
    match run(app_server, component, request, is_set, command).await {
        Ok(completed) => {
            crate::metrics::command(node, "completed");
            IqReply::result(completed)
        }
        Err(fault) => {
            crate::metrics::command(node, fault.label());
            match &fault {
                CommandFault::Refused(CommandError::Store(error)) => {
                    tracing::warn!(%error, "push command failed in the store");
                }
                other => tracing::debug!(reason = %other, "push command refused"),
            }
            fault.reply()
        }
    }
}

async fn run(
    app_server: &AppServer,
    component: &BareJid,
    request: &IqHeader,
    is_set: bool,
    command: &Element,
) -> Result<Element, CommandFault> {
    if !is_set {
        return Err(CommandFault::NotASet);
    }
    let input = CommandRequest::read(command);
    let node = input.node.ok_or(CommandFault::UnknownNode)?;
    let which = PushCommand::from_node(node).ok_or(CommandFault::UnknownNode)?;
    if !input.executes() {
        return Err(CommandFault::UnsupportedAction);
    }
    let form = input.form.ok_or(CommandFault::NoForm)?;
    let from = request.from.as_ref().ok_or(CommandFault::NoSender)?;
    // The device hash covers the bare JID in wire (normalised) form (docs/protocol.md B §1.3).
    let bare = from.to_bare();
    let token = forms::field_value(form, "token");
    let device_id = forms::field_value(form, "device-id");
    let android_id = forms::field_value(form, "android-id");
    let fields = RegisterCommand {
        bare_jid: bare.as_str(),
        domain: from.domain().as_str(),
        token: token.as_deref(),
        device_id: device_id.as_deref(),
        android_id: android_id.as_deref(),
        has_muc: forms::has_field(form, "muc"),
    };
    let session_id = input
        .session_id
        .map_or_else(commands::new_session_id, str::to_owned);
    match which {
        PushCommand::Register(service) => {
            let registration = app_server.register(service, fields).await?;
            let form = forms::text_single_form(&[
                ("jid", component.as_str()),
                ("node", registration.node.as_str()),
                ("secret", registration.secret.expose()),
            ]);
            Ok(commands::completed(node, &session_id, Some(form)))
        }
        PushCommand::Unregister(service) => {
            app_server.unregister(service, fields).await?;
            Ok(commands::completed(node, &session_id, None))
        }
    }
}
