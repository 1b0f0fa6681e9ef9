//! One struct per section of `pushgate.toml`, with the built-in defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use pushgate_xmpp::XmlLimits;

pub use pushgate_core::settings::redact_url;
use pushgate_core::settings::serialize_redacted_url;

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

/// `[database]`: where registrations, revocations and stored messages live.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…`, `postgres://…`, `mysql://…` or `mariadb://…`.
    #[serde(
        deserialize_with = "lenient_string",
        serialize_with = "serialize_redacted_url"
    )]
    pub url: String,
    /// The most connections the pool opens; when not set, 2 for SQLite (one writer at a time
    /// anyway, and each connection keeps a thread and a page cache of its own) and 10 for
    /// PostgreSQL and MariaDB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// The longest a query waits for a free connection.
    pub acquire_timeout: HumanDuration,
    /// SQLite only: how long a write waits for the database lock.
    pub sqlite_busy_timeout: HumanDuration,
    /// How long a registration or revocation answer read from the database is given again
    /// from memory: the longest another instance's change on a shared database goes unseen.
    /// `"0s"` turns the cache off.
    pub cache_ttl: HumanDuration,
    /// The most registrations kept in memory, and separately the most endpoint revocation
    /// answers. 0 turns the cache off.
    pub cache_entries: usize,
}

impl DatabaseSettings {
    /// The pool size: the setting, or the default for the database in `url`.
    pub fn pool_size(&self) -> u32 {
        self.max_connections
            .unwrap_or(if self.url.starts_with("sqlite:") {
                2
            } else {
                10
            })
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://pushgate.db?mode=rwc".to_owned(),
            max_connections: None,
            acquire_timeout: HumanDuration::secs(5),
            sqlite_busy_timeout: HumanDuration::secs(5),
            cache_ttl: HumanDuration::secs(60),
            cache_entries: 100_000,
        }
    }
}

/// `[http]`: the listener for UnifiedPush endpoints and `/health`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The public base URL of the listener; endpoints are `{public_url}/push/{token}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The longest a request may take to be answered.
    pub request_timeout: HumanDuration,
    /// The longest a client may take to send a request head; also how long an idle
    /// keep-alive connection is kept.
    pub header_read_timeout: HumanDuration,
    /// The longest a request body may go without a byte arriving.
    pub body_read_timeout: HumanDuration,
    /// The most connections served at once; at the limit the connection idle the longest
    /// makes room for a new one.
    pub max_connections: usize,
    /// The most connections from one client address (IPv6: one /64); 0 means no cap.
    pub max_connections_per_address: usize,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace: HumanDuration,
    /// Whether the client address for rate limits is taken from the last `X-Forwarded-For`
    /// (or `Forwarded`) entry, as a reverse proxy in front of pushgate writes it. Without it,
    /// behind a proxy every sender shares one per-client limit.
    pub trust_forwarded_for: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            request_timeout: HumanDuration::secs(10),
            header_read_timeout: HumanDuration::secs(10),
            body_read_timeout: HumanDuration::secs(10),
            max_connections: pushgate_up_http::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: pushgate_up_http::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            shutdown_grace: HumanDuration::secs(10),
            trust_forwarded_for: false,
        }
    }
}

/// `[unified_push]`: the UnifiedPush provider role.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnifiedPushSettings {
    /// Endpoint token keys, standard base64 of 32 bytes each: the first seals, all open. A
    /// single string counts as a list of one (handy in the environment).
    #[serde(deserialize_with = "one_or_more_keys")]
    pub keys: Vec<SecretString>,
    /// A file with one key per line, instead of `keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_file: Option<PathBuf>,
    /// How long an endpoint handed out at registration stays valid.
    pub registration_ttl: HumanDuration,
    /// The longest an undelivered message is kept, whatever its `TTL` asks (RFC 8030 §5.2).
    pub message_ttl_max: HumanDuration,
    /// The most undelivered messages kept for one client; past it a POST gets 429.
    pub max_messages_per_owner: u32,
    /// The most undelivered messages kept in all; past it a POST gets 503.
    pub max_messages_total: u64,
    /// When not empty, only accounts of these domains may register.
    pub allowed_domains: Vec<String>,
    /// How long a push waits for the client's answer before it counts as not delivered (and
    /// is kept for later). Must stay below `http.request_timeout`.
    pub push_timeout: HumanDuration,
    /// Sustained POSTs per second to one endpoint.
    pub endpoint_rate: u32,
    /// POSTs one endpoint may send in a burst.
    pub endpoint_burst: u32,
    /// Sustained POSTs per second from one client address (an IPv6 /64).
    pub client_rate: u32,
    /// POSTs one client address may send in a burst.
    pub client_burst: u32,
}

impl Default for UnifiedPushSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            keys_file: None,
            registration_ttl: HumanDuration::secs(7 * 86_400),
            message_ttl_max: HumanDuration::secs(86_400),
            max_messages_per_owner: 100,
            max_messages_total: 100_000,
            allowed_domains: Vec::new(),
            push_timeout: HumanDuration::secs(5),
            endpoint_rate: 10,
            endpoint_burst: 50,
            client_rate: 100,
            client_burst: 500,
        }
    }
}

/// `[app_server]`: the XEP-0357 app server role.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppServerSettings {
    /// A registration whose token FCM called dead is deleted this long after (a
    /// re-registration in between revives it).
    pub purge_dead_after: HumanDuration,
    /// The most devices one account may have registered (a token FCM called dead does not
    /// count); a new device past it is refused with `policy-violation`. Devices already
    /// registered always register again.
    pub max_devices_per_account: u32,
}

impl Default for AppServerSettings {
    fn default() -> Self {
        Self {
            purge_dead_after: HumanDuration::secs(30 * 86_400),
            max_devices_per_account: pushgate_core::app_server::DEFAULT_MAX_DEVICES_PER_ACCOUNT,
        }
    }
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

/// Reads `keys = ["…", "…"]` or `keys = "…"`.
fn one_or_more_keys<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<SecretString>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of base64 keys")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![SecretString::new(value)])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }

    deserializer.deserialize_any(Keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_defaults_by_database_and_the_setting_wins() {
        let mut database = DatabaseSettings::default();
        assert_eq!(database.pool_size(), 2, "SQLite by default");
        database.url = "postgres://db.example/pushgate".to_owned();
        assert_eq!(database.pool_size(), 10);
        database.url = "mysql://db.example/pushgate".to_owned();
        assert_eq!(database.pool_size(), 10);
        database.max_connections = Some(3);
        assert_eq!(database.pool_size(), 3);
        database.url = "sqlite://other.db".to_owned();
        assert_eq!(database.pool_size(), 3);
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://pushgate:s3cret@db.example:5432/pushgate"),
            "postgres://pushgate:<redacted>@db.example:5432/pushgate"
        );
        assert_eq!(
            redact_url("mysql://a:b:c@h/d?x=@"),
            "mysql://a:<redacted>@h/d?x=@"
        );
        assert_eq!(redact_url("postgres://user@h/d"), "postgres://user@h/d");
        assert_eq!(
            redact_url("postgres://u:p/w@rd@h/d"),
            "postgres://u:<redacted>@h/d"
        );
        assert_eq!(
            redact_url("sqlite://pushgate.db?mode=rwc"),
            "sqlite://pushgate.db?mode=rwc"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
