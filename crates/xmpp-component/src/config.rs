//! Settings of one component link: where to connect, how long to wait, how hard to retry, and
//! how much XML to accept.

use std::time::Duration;

/// Everything one XEP-0114 component link needs.
#[derive(Clone)]
pub struct ComponentConfig {
    /// The component's JID, a bare domain such as `push.example.org`.
    pub jid: String,
    /// Host of the XMPP server's component port.
    pub host: String,
    /// The XMPP server's component port (5347 by convention).
    pub port: u16,
    /// The shared secret of XEP-0114 §3.
    pub secret: String,
    /// A short id of this process, the first part of every outgoing IQ id
    /// (`<instance>.<counter>`), so that answers can later be routed between instances.
    pub instance_id: String,
    /// Connection, handshake, keepalive and IQ deadlines.
    pub timeouts: LinkTimeouts,
    /// How reconnection attempts are spaced.
    pub reconnect: ReconnectPolicy,
    /// Limits on incoming XML.
    pub limits: XmlLimits,
    /// Capacity of the outbound stanza queue shared by every task that sends.
    pub outbound_queue: usize,
    /// How many incoming IQ get/set requests are handled at once; past this bound a request
    /// waits in a queue of `max_queued_iqs`.
    pub max_concurrent_iqs: usize,
    /// How many IQ requests may wait for their turn; past it a request is answered
    /// `resource-constraint` (wait). 0: none waits.
    pub max_queued_iqs: usize,
    /// The longest a request waits in the queue before it is answered `resource-constraint`
    /// (wait); well inside the deadline the XMPP server gives a publish.
    pub iq_queue_wait: Duration,
    /// Wire bytes of the parsed stanzas (IQ requests, messages, presences) whose handlers run
    /// at once. An IQ request past it is answered `resource-constraint` (wait); a message or
    /// presence waits. Parsed stanzas are held as trees a few times their wire size, so this
    /// bounds what hostile requests can make the process hold.
    pub max_request_bytes_in_flight: usize,
    /// When set, the link connects only while it is open, and drops its session at once when
    /// it closes (a lease held elsewhere: one instance of several holds the link).
    pub gate: Option<LinkGate>,
    /// Where an answer to another instance's IQ goes (its id names that instance): several
    /// instances share this component JID (ejabberd spreads its stanzas over their links).
    /// Without it, such answers are dropped as unsolicited.
    pub foreign_answers: Option<std::sync::Arc<dyn ForeignAnswers>>,
}

/// Takes the answers to other instances' IQs, to hand them to their instance.
pub trait ForeignAnswers: Send + Sync + 'static {
    /// `answer` (a result or an error) is for the IQ that `instance` sent.
    fn forward(&self, instance: &str, answer: xmpp_parsers::iq::Iq);
}

impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The shared secret never reaches a log line.
        f.debug_struct("ComponentConfig")
            .field("jid", &self.jid)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("secret", &"<redacted>")
            .field("instance_id", &self.instance_id)
            .field("timeouts", &self.timeouts)
            .field("reconnect", &self.reconnect)
            .field("limits", &self.limits)
            .field("outbound_queue", &self.outbound_queue)
            .field("max_concurrent_iqs", &self.max_concurrent_iqs)
            .field("max_queued_iqs", &self.max_queued_iqs)
            .field("iq_queue_wait", &self.iq_queue_wait)
            .field(
                "max_request_bytes_in_flight",
                &self.max_request_bytes_in_flight,
            )
            .finish()
    }
}

impl ComponentConfig {
    /// A configuration with default timeouts, limits and queue sizes and a fresh instance id.
    pub fn new(
        jid: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            jid: jid.into(),
            host: host.into(),
            port,
            secret: secret.into(),
            instance_id: generate_instance_id(),
            timeouts: LinkTimeouts::default(),
            reconnect: ReconnectPolicy::default(),
            limits: XmlLimits::default(),
            outbound_queue: 1024,
            max_concurrent_iqs: DEFAULT_CONCURRENT_IQS,
            max_queued_iqs: DEFAULT_QUEUED_IQS,
            iq_queue_wait: DEFAULT_IQ_QUEUE_WAIT,
            max_request_bytes_in_flight: DEFAULT_REQUEST_BYTES_IN_FLIGHT,
            gate: None,
            foreign_answers: None,
        }
    }
}

/// The default of [`ComponentConfig::max_request_bytes_in_flight`]: 4 MiB, some thousands of
/// ordinary requests, and tens of MB at most as parsed trees.
pub const DEFAULT_REQUEST_BYTES_IN_FLIGHT: usize = 4 * 1024 * 1024;

/// The default of [`ComponentConfig::max_concurrent_iqs`]. A publish in flight holds about a
/// kilobyte (its node and secret, no tree) and waits on FCM for ~100 ms: 2048 at once allow
/// 20,000 wake-ups/s. Parsed requests are bounded by their bytes in flight besides.
pub const DEFAULT_CONCURRENT_IQS: usize = 2048;

/// The default of [`ComponentConfig::max_queued_iqs`]: a burst of some thousands of publishes
/// (a busy server after a restart) waits instead of being refused.
pub const DEFAULT_QUEUED_IQS: usize = 4096;

/// The default of [`ComponentConfig::iq_queue_wait`]: with the wake-up's own deadline after it,
/// well inside the ~30 s ejabberd and Prosody give a publish.
pub const DEFAULT_IQ_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// A short random instance id: 8 lowercase hex digits.
pub fn generate_instance_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Deadlines of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTimeouts {
    /// TCP connect.
    pub connect: Duration,
    /// From the TCP connection to the server's `<handshake/>`.
    pub handshake: Duration,
    /// Read silence after which a keepalive ping is sent.
    pub keepalive_idle: Duration,
    /// Silence after the keepalive ping after which the link is declared dead.
    pub keepalive_timeout: Duration,
    /// Deadline of `ComponentLink::request` (`send_iq` takes its own).
    pub iq: Duration,
    /// How long in-flight handlers may run on shutdown before the stream is closed anyway.
    pub shutdown_grace: Duration,
}

impl Default for LinkTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            // A frozen server is noticed within keepalive_idle + keepalive_timeout (30 s).
            keepalive_idle: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
            iq: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Exponential backoff with jitter between connection attempts.
///
/// The backoff grows only with failed attempts: a refused connection, a handshake that failed
/// or was rejected, a `<conflict/>`. A session that completed its handshake and stayed up at
/// least `stable_after` was a success, so when it drops the next attempt comes after `initial`
/// again (within a second by default), however often the network flaps. A session that ended
/// sooner counts as a failed attempt: a server that accepts the handshake and drops the stream
/// at once (a crash loop) is retried with a growing delay instead of in a tight loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Base delay of the first retry (the actual delay is jittered into `[initial/2, initial]`).
    pub initial: Duration,
    /// Cap of the delay.
    pub max: Duration,
    /// A session that stayed up this long resets the backoff to `initial`; a shorter one
    /// counts as a failed attempt.
    pub stable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(1),
        }
    }
}

/// Limits on incoming XML, enforced per top-level element (stanza) while its bytes arrive,
/// before anything is parsed or built.
///
/// A stanza that crosses any of them is skipped without being kept in memory, whatever its
/// size; if it was an IQ get/set whose `id` and `from` can be read, it is answered
/// `policy-violation` (modify), and the link stays up. A stanza is never the stream's problem:
/// only input that cannot be framed at all (text between stanzas) ends the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// Wire bytes of one stanza, from `<` to its closing `>`.
    pub max_stanza_bytes: usize,
    /// Element nesting depth inside one stanza (the stanza element itself is depth 1).
    pub max_depth: usize,
    /// Bytes of one attribute value (a namespace URI is one too).
    pub max_attribute_bytes: usize,
    /// Bytes of one element or attribute name with its prefix, counted as the unquoted run of
    /// a start tag between two attribute values (so the spaces and `=` around it count too).
    pub max_name_bytes: usize,
    /// Attributes (namespace declarations included) of one element.
    pub max_attributes: usize,
    /// Elements in one stanza, the stanza element included.
    pub max_elements: usize,
    /// Fields of one XEP-0004 data form.
    pub max_form_fields: usize,
    /// Values of one data form field.
    pub max_field_values: usize,
}

impl XmlLimits {
    /// The longest single token (name, attribute value, buffered text) the full parser takes;
    /// the framer already refused any name or value longer than the limits allow.
    pub(crate) fn parser_token_bytes(&self) -> usize {
        self.max_attribute_bytes
            .max(self.max_name_bytes)
            .max(8 * 1024)
    }
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attribute_bytes: 4096,
            max_name_bytes: 512,
            max_attributes: 64,
            max_elements: 256,
            max_form_fields: 64,
            max_field_values: 16,
        }
    }
}

/// A lease's say over a link: `None` while the lease is not held here, and while it is, when
/// the lease holder started the last check that showed it still holds it. After a session
/// ends, the link connects again only on a check started after that end, so an instance that
/// was frozen, and lost its lease meanwhile, never reconnects on an answer from before.
pub type LinkGate = tokio::sync::watch::Receiver<Option<tokio::time::Instant>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let config = ComponentConfig::new("push.example.test", "127.0.0.1", 5347, "hunter2-secret");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        assert!(printed.contains("push.example.test"), "{printed}");
    }
}
