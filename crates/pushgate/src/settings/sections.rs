//! The sections only the binary reads, one struct each with its built-in defaults: the
//! sections of the other crates are their own config types (see `Settings`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use pushgate_xmpp::XmlLimits;

pub use pushgate_core::settings::redact_url;

use super::values::{HumanDuration, SecretString, lenient_string};

/// `[component]` (or one `[[component]]` entry): a XEP-0114 link to an XMPP server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// The component's JID, a bare domain (`push.example.test`).
    pub jid: String,
    /// The XMPP server's component listener host.
    #[serde(
        default = "default_component_host",
        deserialize_with = "lenient_string"
    )]
    pub host: String,
    /// The XMPP server's component listener port.
    #[serde(default = "default_component_port")]
    pub port: u16,
    /// The shared secret of the XEP-0114 handshake (or `secret_file`).
    #[serde(default)]
    pub secret: SecretString,
    /// A file holding the shared secret; its trailing newline is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// The longest a TCP connect to the server may take.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The longest from the TCP connection to the server's `<handshake/>` (XEP-0114 §3).
    #[serde(default = "default_connect_timeout")]
    pub handshake_timeout: HumanDuration,
    /// After this long without traffic from the server, a keepalive ping is sent.
    #[serde(default = "default_keepalive_idle")]
    pub keepalive_idle: HumanDuration,
    /// A keepalive ping unanswered this long means the link is dead and is reconnected.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    /// The longest wait between reconnect attempts (the backoff starts under a second).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: HumanDuration,
    /// The largest stanza accepted from the server, in bytes.
    #[serde(default = "default_max_stanza_bytes")]
    pub max_stanza_bytes: usize,
    /// The deepest element nesting accepted in one stanza.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// The longest attribute value (or namespace URI) accepted, in bytes.
    #[serde(default = "default_max_attribute_bytes")]
    pub max_attribute_bytes: usize,
    /// The longest element or attribute name accepted, in bytes.
    #[serde(default = "default_max_name_bytes")]
    pub max_name_bytes: usize,
    /// The most attributes accepted on one element.
    #[serde(default = "default_max_attributes")]
    pub max_attributes: usize,
    /// The most elements accepted in one stanza.
    #[serde(default = "default_max_elements")]
    pub max_elements: usize,
    /// The most fields accepted in one data form.
    #[serde(default = "default_max_form_fields")]
    pub max_form_fields: usize,
    /// The most values accepted in one data form field.
    #[serde(default = "default_max_field_values")]
    pub max_field_values: usize,
    /// How many IQ requests from the server are handled at once; past it they wait in a queue.
    #[serde(default = "default_max_concurrent_iqs")]
    pub max_concurrent_iqs: usize,
    /// How many IQ requests may wait for their turn; past it they are answered
    /// `resource-constraint` (wait). 0: none waits.
    #[serde(default = "default_max_queued_iqs")]
    pub max_queued_iqs: usize,
    /// The longest an IQ request waits in the queue before it is answered
    /// `resource-constraint` (wait).
    #[serde(default = "default_iq_queue_wait")]
    pub iq_queue_wait: HumanDuration,
    /// The most wire bytes of parsed requests whose handlers run at once; past it an IQ
    /// request is answered `resource-constraint` (wait).
    #[serde(default = "default_max_request_bytes_in_flight")]
    pub max_request_bytes_in_flight: usize,
    /// Which push roles this link serves: `app_server` (XEP-0357, p2) and/or `unified_push`
    /// (up). At most one link may serve `unified_push`: its JID is the one clients accept
    /// pushes from.
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
}

/// A push role a component link serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The XEP-0357 app server (registration commands, publishes, FCM wake-ups).
    AppServer,
    /// The UnifiedPush provider (registrations, pushes to clients).
    UnifiedPush,
}

fn default_roles() -> Vec<Role> {
    vec![Role::AppServer, Role::UnifiedPush]
}

fn default_component_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_component_port() -> u16 {
    5347
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_keepalive_idle() -> HumanDuration {
    // With keepalive_timeout's 20 s, a frozen server is noticed within 30 s.
    HumanDuration::secs(10)
}
fn default_keepalive_timeout() -> HumanDuration {
    HumanDuration::secs(20)
}
fn default_reconnect_max() -> HumanDuration {
    // docs/protocol.md A.1: backoff capped at 30 s.
    HumanDuration::secs(30)
}
fn default_max_stanza_bytes() -> usize {
    256 * 1024
}
fn default_max_concurrent_iqs() -> usize {
    pushgate_xmpp::DEFAULT_CONCURRENT_IQS
}
fn default_max_queued_iqs() -> usize {
    pushgate_xmpp::DEFAULT_QUEUED_IQS
}
fn default_iq_queue_wait() -> HumanDuration {
    HumanDuration::secs(pushgate_xmpp::DEFAULT_IQ_QUEUE_WAIT.as_secs())
}
fn default_max_depth() -> usize {
    XmlLimits::default().max_depth
}
fn default_max_attribute_bytes() -> usize {
    XmlLimits::default().max_attribute_bytes
}
fn default_max_name_bytes() -> usize {
    XmlLimits::default().max_name_bytes
}
fn default_max_attributes() -> usize {
    XmlLimits::default().max_attributes
}
fn default_max_elements() -> usize {
    XmlLimits::default().max_elements
}
fn default_max_form_fields() -> usize {
    XmlLimits::default().max_form_fields
}
fn default_max_field_values() -> usize {
    XmlLimits::default().max_field_values
}
fn default_max_request_bytes_in_flight() -> usize {
    pushgate_xmpp::DEFAULT_REQUEST_BYTES_IN_FLIGHT
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `GET /metrics` listens; off when not set. Keep it off the public listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// `[runtime]`: the threads that run pushgate.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Threads running the links, the HTTP listener and the senders: 1 (the default) runs
    /// everything on one thread, which spends the least CPU per wake-up or push (no hand-offs
    /// between threads); more spread the work over that many threads; 0 means one per core.
    /// The database driver has threads of its own either way.
    pub worker_threads: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging to standard error.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `pushgate=debug,info`); `RUST_LOG` overrides it.
    #[serde(deserialize_with = "lenient_string")]
    pub level: String,
    /// `pretty` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        }
    }
}

/// Reads `[component]` (one table) or `[[component]]` (an array of tables) alike.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ComponentSettings>, D::Error> {
    struct Components;

    impl<'de> Visitor<'de> for Components {
        type Value = Vec<ComponentSettings>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a [component] table or [[component]] tables")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let one = ComponentSettings::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(vec![one])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }

    deserializer.deserialize_any(Components)
}
