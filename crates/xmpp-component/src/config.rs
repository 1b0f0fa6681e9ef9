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
    /// How many incoming IQ get/set requests are handled at once; past this bound a request is
    /// answered `resource-constraint` (wait).
    pub max_concurrent_iqs: usize,
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
            max_concurrent_iqs: 256,
        }
    }
}

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
            keepalive_idle: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            iq: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Exponential backoff with jitter between connection attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Base delay of the first retry (the actual delay is jittered into `[initial/2, initial]`).
    pub initial: Duration,
    /// Cap of the delay.
    pub max: Duration,
    /// A session that stayed up this long resets the backoff to `initial`.
    pub stable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Limits on incoming XML, enforced per top-level element (stanza).
///
/// A stanza over `max_stanza_bytes`, deeper than `max_depth` or with an attribute value longer
/// than `max_attribute_bytes` is skipped without being kept in memory; if it was an IQ get/set
/// it is answered `bad-request`, and the link stays up. Two cases end the stream instead,
/// because the parser cannot skip them: a single token (attribute value, name) over 8 KiB, and
/// a stanza over four times `max_stanza_bytes` (the memory bound of the skip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// Wire bytes of one stanza, from `<` to its closing `>`.
    pub max_stanza_bytes: usize,
    /// Element nesting depth inside one stanza (the stanza element itself is depth 1).
    pub max_depth: usize,
    /// Bytes of one attribute value.
    pub max_attribute_bytes: usize,
}

impl XmlLimits {
    /// Input bytes between two complete stanzas after which the stream is ended.
    pub fn hard_stanza_bytes(&self) -> usize {
        self.max_stanza_bytes.saturating_mul(4).max(64 * 1024)
    }
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attribute_bytes: 4096,
        }
    }
}

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
