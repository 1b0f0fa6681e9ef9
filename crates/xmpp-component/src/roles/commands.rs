//! XEP-0050 ad-hoc commands: the four push commands, what a request carries, the completed
//! answer, and how the commands are discovered (XEP-0050 §2.2, §2.3).

use std::collections::BTreeSet;

use pushgate_core::PushService;
use rxml::xml_ncname;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

/// The XEP-0050 namespace, also the disco node listing the commands.
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";

/// One of the app server's commands (docs/protocol.md A.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushCommand {
    /// `register-push-<service>`.
    Register(PushService),
    /// `unregister-push-<service>`.
    Unregister(PushService),
}

impl PushCommand {
    const ALL: [Self; 4] = [
        Self::Register(PushService::Fcm),
        Self::Unregister(PushService::Fcm),
        Self::Register(PushService::Apns),
        Self::Unregister(PushService::Apns),
    ];

    /// The command node.
    pub(crate) fn node(self) -> &'static str {
        match self {
            Self::Register(PushService::Fcm) => "register-push-fcm",
            Self::Unregister(PushService::Fcm) => "unregister-push-fcm",
            Self::Register(PushService::Apns) => "register-push-apns",
            Self::Unregister(PushService::Apns) => "unregister-push-apns",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Register(PushService::Fcm) => "Register a device for FCM push",
            Self::Unregister(PushService::Fcm) => "Unregister a device from FCM push",
            Self::Register(PushService::Apns) => "Register a device for APNs push",
            Self::Unregister(PushService::Apns) => "Unregister a device from APNs push",
        }
    }

    /// The command of a node, ignoring ASCII case as p2 does (`toUpperCase(Locale.US)`).
    pub(crate) fn from_node(node: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|command| command.node().eq_ignore_ascii_case(node))
    }
}

/// The parts of a `<command/>` request the push commands use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CommandRequest<'a> {
    /// `@node`.
    pub node: Option<&'a str>,
    /// `@action`; absent means `execute` (XEP-0050 §3.4).
    pub action: Option<&'a str>,
    /// `@sessionid`, echoed when the client sent one.
    pub session_id: Option<&'a str>,
    /// The first `jabber:x:data` child.
    pub form: Option<&'a Element>,
}

impl<'a> CommandRequest<'a> {
    /// Reads a `<command xmlns='http://jabber.org/protocol/commands'/>` element.
    pub(crate) fn read(command: &'a Element) -> Self {
        Self {
            node: command.attr("node"),
            action: command.attr("action"),
            session_id: command.attr("sessionid"),
            form: super::forms::first_form(command),
        }
    }

    /// Whether the action asks to run the command: `execute`, or none (XEP-0050 §3.4 makes
    /// `execute` the default; p2 refuses a missing action, Conversations always sends it).
    pub(crate) fn executes(&self) -> bool {
        self.action.is_none_or(|action| action == "execute")
    }
}

/// A fresh session id. The push commands finish in one step, so it only has to be unique
/// enough for a client to tell answers apart (p2 uses the time in milliseconds).
pub(crate) fn new_session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `<command node=… sessionid=… status='completed'>`, with the form when there is one.
pub(crate) fn completed(node: &str, session_id: &str, form: Option<Element>) -> Element {
    Element::builder("command", COMMANDS)
        .attr(xml_ncname!("node").to_owned(), node)
        .attr(xml_ncname!("sessionid").to_owned(), session_id)
        .attr(xml_ncname!("status").to_owned(), "completed")
        .append_all(form)
        .build()
}

/// The disco#items of the commands node (XEP-0050 §2.2).
pub(crate) fn items(component: &BareJid) -> Vec<DiscoItem> {
    PushCommand::ALL
        .into_iter()
        .map(|command| DiscoItem {
            jid: Jid::from(component.clone()),
            node: Some(command.node().to_owned()),
            name: Some(command.name().to_owned()),
        })
        .collect()
}

/// The disco#info of a command node (XEP-0050 §2.3), or `None` for any other node.
pub(crate) fn node_info(node: &str) -> Option<DiscoInfoResult> {
    let command = PushCommand::from_node(node)?;
    let features: BTreeSet<String> = [COMMANDS, ns::DATA_FORMS]
        .into_iter()
        .map(str::to_owned)
        .collect();
    Some(DiscoInfoResult {
        node: Some(node.to_owned()),
        identities: vec![Identity::new(
            "automation",
            "command-node",
            "en",
            command.name(),
        )],
        features,
        extensions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_match_ignoring_case() {
        assert_eq!(
            PushCommand::from_node("REGISTER-push-FCM"),
            Some(PushCommand::Register(PushService::Fcm))
        );
        assert_eq!(
            PushCommand::from_node("unregister-push-apns"),
            Some(PushCommand::Unregister(PushService::Apns))
        );
        assert_eq!(PushCommand::from_node("register-push-foo"), None);
        assert_eq!(PushCommand::from_node("register-push-fcm "), None);
    }

    #[test]
    fn execute_or_no_action_runs_the_command() {
        let read = |xml: &str| {
            let element: Element = xml.parse().expect("test XML");
            CommandRequest::read(&element).executes()
        };
        let ns = COMMANDS;
        assert!(read(&format!(
            "<command xmlns='{ns}' node='n' action='execute'/>"
        )));
        assert!(read(&format!("<command xmlns='{ns}' node='n'/>")));
        assert!(!read(&format!(
            "<command xmlns='{ns}' node='n' action='cancel'/>"
        )));
        assert!(!read(&format!(
            "<command xmlns='{ns}' node='n' action='complete'/>"
        )));
    }

    #[test]
    fn completed_without_form_is_empty() {
        let element = completed("unregister-push-fcm", "s1", None);
        assert_eq!(element.attr("status"), Some("completed"));
        assert_eq!(element.attr("sessionid"), Some("s1"));
        assert_eq!(element.children().count(), 0);
    }
}
