//! The crate's metrics (docs/metrics.md), named here once. Labels come from closed sets: the
//! configured component JID, outcomes and reasons; never a node, token or user's JID.

use metrics::{Gauge, counter, gauge};
use pushgate_core::metric_handles::CounterSet;

static PUBLISHES: CounterSet = CounterSet::new(
    "pushgate_xmpp_publishes_total",
    &[],
    "outcome",
    &[
        "woken",
        "no_such_node",
        "forbidden",
        "token_dead",
        "unavailable",
        "internal_error",
        "coalesced",
        "bad_node",
        "unknown_module",
    ],
);

/// The link to the XMPP server is up (1) or not (0).
pub(crate) fn component_connected(component: &str, connected: bool) {
    gauge!("pushgate_component_connected", "jid" => component.to_owned()).set(if connected {
        1.0
    } else {
        0.0
    });
}

/// The link is held by another instance of several (1) or not (0).
pub(crate) fn component_standby(component: &str, standby: bool) {
    gauge!("pushgate_component_standby", "jid" => component.to_owned()).set(if standby {
        1.0
    } else {
        0.0
    });
}

/// A link starts: its counters are served from now on, at 0 until something happens.
pub(crate) fn link_started(component: &str) {
    counter!("pushgate_component_reconnects_total", "jid" => component.to_owned()).increment(0);
    counter!("pushgate_xmpp_stanzas_unserialisable_total").increment(0);
}

/// A session of the link ended and a new one will be tried.
pub(crate) fn component_reconnect(component: &str) {
    counter!("pushgate_component_reconnects_total", "jid" => component.to_owned()).increment(1);
}

/// IQ requests of `component` being handled or waiting in the queue.
pub(crate) fn iqs_in_flight(component: &str) -> Gauge {
    gauge!("pushgate_xmpp_iqs_in_flight", "jid" => component.to_owned())
}

/// A stanza refused or skipped, by `reason` (snake case, a closed set).
pub(crate) fn stanza_refused(reason: &'static str) {
    counter!("pushgate_xmpp_stanzas_refused_total", "reason" => reason).increment(1);
}

/// A XEP-0357 publish (to either role that takes them) answered with `outcome`.
pub(crate) fn publish(outcome: &'static str) {
    PUBLISHES.increment(outcome, 1);
}

/// An ad-hoc command (`command` is its node) answered with `outcome`.
pub(crate) fn command(command: &'static str, outcome: &'static str) {
    counter!("pushgate_xmpp_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
}

/// A UnifiedPush `<register/>` answered with `outcome`.
pub(crate) fn up_registration(outcome: &'static str) {
    counter!("pushgate_up_registrations_total", "outcome" => outcome).increment(1);
}
