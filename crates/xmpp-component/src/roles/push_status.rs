//! `push-status`, an XEP-0050 ad-hoc command of the UnifiedPush provider: the caller's own
//! UnifiedPush deliveries, as a data form any client with ad-hoc commands (Gajim, Cheogram,
//! Conversations' command view) shows as a table.
//!
//! Whose deliveries is decided by `from`, which the caller's XMPP server vouches for: the trace
//! of that bare JID, and the messages kept for that full JID. Nobody can ask about anyone else,
//! and another user's call gets a form with no rows.

use std::collections::BTreeSet;

use pushgate_core::provider::Provider;
use pushgate_core::trace::{TraceEvent, latency_text};
use pushgate_core::unified_push::iso8601_utc;
use rxml::xml_ncname;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item as DiscoItem};
use xmpp_parsers::iq::IqHeader;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

use super::commands::{COMMANDS, CommandRequest, completed, new_session_id};
use crate::link::handler::IqReply;

/// The command's node.
pub(crate) const NODE: &str = "push-status";
/// Its name in command lists.
const NAME: &str = "Show my UnifiedPush deliveries";
/// The report's columns: (var, label).
const COLUMNS: [(&str, &str); 6] = [
    ("time", "Time (UTC)"),
    ("step", "Step"),
    ("outcome", "Outcome"),
    ("latency", "Latency"),
    ("app", "App"),
    ("trace", "Trace id"),
];

/// Whether `payload` is this command.
pub(crate) fn is_push_status(payload: &Element) -> bool {
    payload.is("command", COMMANDS)
        && payload
            .attr("node")
            .is_some_and(|node| node.eq_ignore_ascii_case(NODE))
}

/// The command in the disco#items of the commands node (XEP-0050 §2.2).
pub(crate) fn item(component: &BareJid) -> DiscoItem {
    DiscoItem {
        jid: Jid::from(component.clone()),
        node: Some(NODE.to_owned()),
        name: Some(NAME.to_owned()),
    }
}

/// The disco#info of the command's node (XEP-0050 §2.3).
pub(crate) fn node_info(node: &str) -> Option<DiscoInfoResult> {
    if !node.eq_ignore_ascii_case(NODE) {
        return None;
    }
    Some(DiscoInfoResult {
        node: Some(NODE.to_owned()),
        identities: vec![Identity::new("automation", "command-node", "en", NAME)],
        features: [COMMANDS, ns::DATA_FORMS]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        extensions: Vec::new(),
    })
}

/// Runs the command for its sender.
pub(crate) async fn execute(
    provider: &Provider,
    request: &IqHeader,
    is_set: bool,
    command: &Element,
) -> IqReply {
    let input = CommandRequest::read(command);
    let Some(from) = request.from.as_ref().filter(|_| is_set && input.executes()) else {
        crate::metrics::command(NODE, "bad_request");
        return IqReply::error(ErrorType::Modify, DefinedCondition::BadRequest);
    };
    let status = provider.delivery_status(from.as_str()).await;
    let waiting = match status.waiting {
        Ok(waiting) => waiting,
        Err(error) => {
            tracing::warn!(%error, "push-status: reading kept messages failed");
            crate::metrics::command(NODE, "internal_error");
            return IqReply::error(ErrorType::Wait, DefinedCondition::InternalServerError);
        }
    };
    crate::metrics::command(NODE, "completed");
    let session = input.session_id.map_or_else(new_session_id, str::to_owned);
    IqReply::result(completed(
        NODE,
        &session,
        Some(report(&status.events, waiting)),
    ))
}

/// The `type='result'` form: a summary in the instructions, one row per event (XEP-0004 §3.4).
fn report(events: &[TraceEvent], waiting: usize) -> Element {
    let apps: BTreeSet<String> = events
        .iter()
        .filter_map(|event| event.application.map(|app| app.to_string()))
        .collect();
    let apps = if apps.is_empty() {
        "none seen".to_owned()
    } else {
        apps.into_iter().collect::<Vec<_>>().join(", ")
    };
    let summary = format!(
        "Messages waiting for this device: {waiting}. Applications (short ids): {apps}. \
         Last {} delivery steps, oldest first.",
        events.len()
    );
    let reported = Element::builder("reported", ns::DATA_FORMS)
        .append_all(COLUMNS.iter().map(|(var, label)| {
            Element::builder("field", ns::DATA_FORMS)
                .attr(xml_ncname!("var").to_owned(), *var)
                .attr(xml_ncname!("label").to_owned(), *label)
                .attr(xml_ncname!("type").to_owned(), "text-single")
                .build()
        }))
        .build();
    let items = events.iter().map(|event| {
        let cells = [
            iso8601_utc(event.at),
            event.hop.as_str().to_owned(),
            event.outcome.as_str().to_owned(),
            latency_text(event.latency_us),
            event
                .application
                .map_or_else(|| "-".to_owned(), |app| app.to_string()),
            event.trace_id.to_string(),
        ];
        Element::builder("item", ns::DATA_FORMS)
            .append_all(COLUMNS.iter().zip(cells).map(|((var, _), value)| {
                Element::builder("field", ns::DATA_FORMS)
                    .attr(xml_ncname!("var").to_owned(), *var)
                    .append(
                        Element::builder("value", ns::DATA_FORMS)
                            .append(value)
                            .build(),
                    )
                    .build()
            }))
            .build()
    });
    Element::builder("x", ns::DATA_FORMS)
        .attr(xml_ncname!("type").to_owned(), "result")
        .append(
            Element::builder("title", ns::DATA_FORMS)
                .append("Your UnifiedPush deliveries")
                .build(),
        )
        .append(
            Element::builder("instructions", ns::DATA_FORMS)
                .append(summary)
                .build(),
        )
        .append(reported)
        .append_all(items)
        .build()
}
