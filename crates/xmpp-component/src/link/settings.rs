//! One `[component]` table (or `[[component]]` entry) of `pushgate.toml`, deserialised into
//! [`ComponentSettings`] as it is, with its defaults and checks here; it becomes the link's
//! [`ComponentConfig`]. What concerns the list of components (at least one, each JID once, one
//! `unified_push` link) is checked by the binary, which sees them all.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pushgate_core::settings::{SecretString, human_duration, lenient_string, read_secret_file};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use xmpp_parsers::jid::{BareJid, Jid};

use crate::config::{
    ComponentConfig, DEFAULT_CONCURRENT_IQS, DEFAULT_IQ_QUEUE_WAIT, DEFAULT_QUEUED_IQS,
    DEFAULT_REQUEST_BYTES_IN_FLIGHT, LinkTimeouts, ReconnectPolicy, XmlLimits,
};

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
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub connect_timeout: Duration,
    /// The longest from the TCP connection to the server's `<handshake/>` (XEP-0114 §3).
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub handshake_timeout: Duration,
    /// After this long without traffic from the server, a keepalive ping is sent.
    #[serde(default = "default_keepalive_idle", with = "human_duration")]
    pub keepalive_idle: Duration,
    /// A keepalive ping unanswered this long means the link is dead and is reconnected.
    #[serde(default = "default_keepalive_timeout", with = "human_duration")]
    pub keepalive_timeout: Duration,
    /// The longest wait between reconnect attempts (the backoff starts under a second).
    #[serde(default = "default_reconnect_max", with = "human_duration")]
    pub reconnect_max: Duration,
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
    #[serde(default = "default_iq_queue_wait", with = "human_duration")]
    pub iq_queue_wait: Duration,
    /// The most wire bytes of parsed requests whose handlers run at once; past it an IQ
    /// request is answered `resource-constraint` (wait).
    #[serde(default = "default_max_request_bytes_in_flight")]
    pub max_request_bytes_in_flight: usize,
    /// Which push roles this link serves: `app_server` (XEP-0357, p2) or `push_modules`
    /// (Monal's token-in-node publishes, fpush's protocol), and/or `unified_push` (up). At
    /// most one link may serve `unified_push`: its JID is the one clients accept pushes from.
    #[serde(default = "default_roles")]
    pub roles: Vec<RoleName>,
    /// The app whose FCM and APNs credentials the `app_server` role wakes devices with: the
    /// `name` of an `[[app]]`; without it, the top-level `[fcm]` and `[apns]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// With several instances on one PostgreSQL database: `single` (the default), one
    /// instance at a time holds this link, by a lease in the database, as Prosody requires;
    /// `shared`, every instance holds it (ejabberd accepts several connections). Without
    /// PostgreSQL, the link is simply held.
    #[serde(default)]
    pub mode: LinkMode,
}

/// How the instances sharing a database hold a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// One instance at a time, by a lease.
    #[default]
    Single,
    /// Every instance.
    Shared,
}

/// A push role a component link serves, as the settings name it; the roles themselves are in
/// `roles/`, which the binary hands the services of the roles named here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    /// The XEP-0357 app server (registration commands, publishes, FCM wake-ups).
    AppServer,
    /// The UnifiedPush provider (registrations, pushes to clients).
    UnifiedPush,
    /// The token-in-node app server (Monal's way, fpush's protocol): publishes whose node is
    /// the device token and whose `pushModule` option names the app (`[[push_module]]`).
    PushModules,
}

fn default_roles() -> Vec<RoleName> {
    vec![RoleName::AppServer, RoleName::UnifiedPush]
}

fn default_component_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_component_port() -> u16 {
    5347
}
fn default_connect_timeout() -> Duration {
    LinkTimeouts::default().connect
}
fn default_keepalive_idle() -> Duration {
    LinkTimeouts::default().keepalive_idle
}
fn default_keepalive_timeout() -> Duration {
    LinkTimeouts::default().keepalive_timeout
}
fn default_reconnect_max() -> Duration {
    ReconnectPolicy::default().max
}
fn default_max_stanza_bytes() -> usize {
    XmlLimits::default().max_stanza_bytes
}
fn default_max_concurrent_iqs() -> usize {
    DEFAULT_CONCURRENT_IQS
}
fn default_max_queued_iqs() -> usize {
    DEFAULT_QUEUED_IQS
}
fn default_iq_queue_wait() -> Duration {
    DEFAULT_IQ_QUEUE_WAIT
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
    DEFAULT_REQUEST_BYTES_IN_FLIGHT
}

/// The lowest limits accepted, with the unit they are printed with. They keep every stanza
/// Conversations, Prosody and ejabberd send for push within the limits: a publish nests 8
/// deep, holds ~30 elements and 4-field forms.
const LIMIT_FLOORS: [(&str, usize, &str); 8] = [
    ("max_stanza_bytes", 4096, " bytes"),
    ("max_depth", 12, ""),
    ("max_attribute_bytes", 1024, " bytes"),
    ("max_name_bytes", 64, " bytes"),
    ("max_attributes", 16, ""),
    ("max_elements", 64, ""),
    ("max_form_fields", 16, ""),
    ("max_field_values", 1, ""),
];

/// One thing wrong with a `[component]` table; [`key`](Self::key) names the key.
#[derive(Debug, thiserror::Error)]
pub enum ComponentSettingsError {
    /// `jid` is not a JID at all.
    #[error("{written:?} is not a valid JID: {reason}")]
    InvalidJid {
        /// The JID as written.
        written: String,
        /// Why it is not one.
        reason: String,
    },
    /// `jid` has a user or a resource.
    #[error(
        "{written:?} must be a bare domain JID such as push.example.org (no user@ or /resource)"
    )]
    NotBareDomain {
        /// The JID as written.
        written: String,
    },
    /// `jid` is not written in its normal form, so it would not match what the server sends.
    #[error("{written:?} is not in normal form; write {normal:?}")]
    NotNormalForm {
        /// The JID as written.
        written: String,
        /// Its normal form.
        normal: String,
    },
    /// Both `secret` and `secret_file` are set. The binary names the two keys with their
    /// place in the file (`component[1].secret`) instead of this message.
    #[error("set either secret or secret_file, not both")]
    SecretAndSecretFile,
    /// `secret_file` cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    UnreadableSecretFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The secret is empty (neither key set, or an empty file).
    #[error("the component secret must not be empty (set secret or secret_file)")]
    EmptySecret,
    /// `port` is zero.
    #[error("must be a port number from 1 to 65535")]
    ZeroPort,
    /// `host` is empty or blank.
    #[error("must not be empty")]
    EmptyHost,
    /// A timeout or wait is zero; holds the key.
    #[error("must be longer than zero")]
    ZeroDuration(&'static str),
    /// `max_concurrent_iqs` is zero: no request would ever be handled.
    #[error("must be at least 1")]
    ZeroConcurrentIqs,
    /// A limit on incoming XML is below its floor (see the floors' comment).
    #[error("must be at least {floor}{unit}")]
    LimitBelowFloor {
        /// The key.
        key: &'static str,
        /// The lowest value accepted.
        floor: usize,
        /// ` bytes`, or nothing for a count.
        unit: &'static str,
    },
    /// `max_request_bytes_in_flight` is below `max_stanza_bytes`: a stanza that large could be
    /// accepted and never handled.
    #[error("must be at least max_stanza_bytes, so that any stanza accepted can be handled")]
    RequestBytesBelowStanzaBytes,
}

impl ComponentSettingsError {
    /// The key within the `[component]` table that is wrong.
    pub fn key(&self) -> &'static str {
        match self {
            Self::InvalidJid { .. } | Self::NotBareDomain { .. } | Self::NotNormalForm { .. } => {
                "jid"
            }
            Self::SecretAndSecretFile | Self::UnreadableSecretFile { .. } => "secret_file",
            Self::EmptySecret => "secret",
            Self::ZeroPort => "port",
            Self::EmptyHost => "host",
            Self::ZeroDuration(key) | Self::LimitBelowFloor { key, .. } => key,
            Self::ZeroConcurrentIqs => "max_concurrent_iqs",
            Self::RequestBytesBelowStanzaBytes => "max_request_bytes_in_flight",
        }
    }
}

impl ComponentSettings {
    /// Reads `secret_file` (when set) into `secret`, then checks the table: everything wrong
    /// with it, empty when it is usable.
    pub fn resolve_and_check(&mut self) -> Vec<ComponentSettingsError> {
        let mut problems = Vec::new();
        if let Err(problem) = self.domain_jid() {
            problems.push(problem);
        }
        match self.read_secret_file() {
            Ok(()) if self.secret.expose().is_empty() => {
                problems.push(ComponentSettingsError::EmptySecret)
            }
            Ok(()) => {}
            // The secret's problem is the file's; an empty secret is not reported besides.
            Err(problem) => problems.push(problem),
        }
        problems.extend(self.check_link());
        problems
    }

    /// The JID as a bare domain JID; refused unless written in its normal form, because the
    /// server addresses the component by the normal form and a link would never match it.
    pub fn domain_jid(&self) -> Result<BareJid, ComponentSettingsError> {
        let written = &self.jid;
        let jid = Jid::new(written).map_err(|error| ComponentSettingsError::InvalidJid {
            written: written.clone(),
            reason: error.to_string(),
        })?;
        if jid.node().is_some() || jid.resource().is_some() {
            return Err(ComponentSettingsError::NotBareDomain {
                written: written.clone(),
            });
        }
        if jid.as_str() != written {
            return Err(ComponentSettingsError::NotNormalForm {
                written: written.clone(),
                normal: jid.as_str().to_owned(),
            });
        }
        Ok(jid.to_bare())
    }

    /// Replaces `secret` with the content of `secret_file`, when that is set.
    fn read_secret_file(&mut self) -> Result<(), ComponentSettingsError> {
        let Some(path) = &self.secret_file else {
            return Ok(());
        };
        if !self.secret.expose().is_empty() {
            return Err(ComponentSettingsError::SecretAndSecretFile);
        }
        let secret = read_secret_file(path).map_err(|source| {
            ComponentSettingsError::UnreadableSecretFile {
                path: path.clone(),
                source,
            }
        })?;
        self.secret = SecretString::new(secret);
        Ok(())
    }

    /// The checks of where to connect, the deadlines and the limits.
    fn check_link(&self) -> Vec<ComponentSettingsError> {
        let mut problems = Vec::new();
        if self.port == 0 {
            problems.push(ComponentSettingsError::ZeroPort);
        }
        if self.host.trim().is_empty() {
            problems.push(ComponentSettingsError::EmptyHost);
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("keepalive_idle", self.keepalive_idle),
            ("keepalive_timeout", self.keepalive_timeout),
            ("reconnect_max", self.reconnect_max),
            ("iq_queue_wait", self.iq_queue_wait),
        ] {
            if value.is_zero() {
                problems.push(ComponentSettingsError::ZeroDuration(key));
            }
        }
        if self.max_concurrent_iqs == 0 {
            problems.push(ComponentSettingsError::ZeroConcurrentIqs);
        }
        let limits = self.xml_limits();
        let values = [
            limits.max_stanza_bytes,
            limits.max_depth,
            limits.max_attribute_bytes,
            limits.max_name_bytes,
            limits.max_attributes,
            limits.max_elements,
            limits.max_form_fields,
            limits.max_field_values,
        ];
        for ((key, floor, unit), value) in LIMIT_FLOORS.into_iter().zip(values) {
            if value < floor {
                problems.push(ComponentSettingsError::LimitBelowFloor { key, floor, unit });
            }
        }
        if self.max_request_bytes_in_flight < self.max_stanza_bytes {
            problems.push(ComponentSettingsError::RequestBytesBelowStanzaBytes);
        }
        problems
    }

    fn xml_limits(&self) -> XmlLimits {
        XmlLimits {
            max_stanza_bytes: self.max_stanza_bytes,
            max_depth: self.max_depth,
            max_attribute_bytes: self.max_attribute_bytes,
            max_name_bytes: self.max_name_bytes,
            max_attributes: self.max_attributes,
            max_elements: self.max_elements,
            max_form_fields: self.max_form_fields,
            max_field_values: self.max_field_values,
        }
    }

    /// The link's configuration (after [`resolve_and_check`](Self::resolve_and_check) read the
    /// secret file), with a fresh instance id.
    pub fn component_config(&self) -> ComponentConfig {
        let mut config = ComponentConfig::new(
            self.jid.clone(),
            self.host.clone(),
            self.port,
            self.secret.expose(),
        );
        config.timeouts = LinkTimeouts {
            connect: self.connect_timeout,
            handshake: self.handshake_timeout,
            keepalive_idle: self.keepalive_idle,
            keepalive_timeout: self.keepalive_timeout,
            ..LinkTimeouts::default()
        };
        config.reconnect = ReconnectPolicy {
            max: self.reconnect_max,
            ..ReconnectPolicy::default()
        };
        config.limits = self.xml_limits();
        config.max_concurrent_iqs = self.max_concurrent_iqs;
        config.max_queued_iqs = self.max_queued_iqs;
        config.iq_queue_wait = self.iq_queue_wait;
        config.max_request_bytes_in_flight = self.max_request_bytes_in_flight;
        config
    }
}

/// `#[serde(deserialize_with = "pushgate_xmpp::one_or_many_components")]`: reads
/// `[component]` (one table) or `[[component]]` (an array of tables) alike.
pub fn one_or_many_components<'de, D: Deserializer<'de>>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ComponentSettings {
        serde_json::from_str(json).expect("parses")
    }

    fn keys(problems: &[ComponentSettingsError]) -> Vec<&'static str> {
        problems.iter().map(ComponentSettingsError::key).collect()
    }

    #[test]
    fn a_table_reads_over_the_defaults_into_the_link_config() {
        let mut settings = parse(
            r#"{"jid": "push.example.test", "secret": 1234, "keepalive_idle": "15s",
                "max_depth": 20, "roles": ["app_server"]}"#,
        );
        assert_eq!(keys(&settings.resolve_and_check()), Vec::<&str>::new());
        assert_eq!(settings.roles, [RoleName::AppServer]);
        let config = settings.component_config();
        assert_eq!(
            config.secret, "1234",
            "a number from the environment is text"
        );
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 5347));
        assert_eq!(config.timeouts.keepalive_idle, Duration::from_secs(15));
        assert_eq!(config.timeouts.keepalive_timeout, Duration::from_secs(20));
        assert_eq!(config.reconnect.max, Duration::from_secs(30));
        assert_eq!(config.limits.max_depth, 20);
        assert_eq!(config.max_concurrent_iqs, DEFAULT_CONCURRENT_IQS);
        let printed = serde_json::to_string(&settings).expect("serialises");
        assert!(printed.contains(r#""secret":"<redacted>""#), "{printed}");
        assert!(printed.contains(r#""connect_timeout":"10s""#), "{printed}");
        assert!(!printed.contains("secret_file"), "{printed}");
    }

    #[test]
    fn jids_must_be_normal_bare_domains() {
        let jid = |jid: &str| parse(&format!(r#"{{"jid": {jid:?}}}"#)).domain_jid();
        assert_eq!(
            jid("push.example.test").expect("valid").as_str(),
            "push.example.test"
        );
        for bad in ["user@push.example.test", "push.example.test/res", ""] {
            assert!(jid(bad).is_err(), "{bad}");
        }
        let not_normal = jid("Push.Example.Test").expect_err("not normal");
        assert!(
            matches!(&not_normal, ComponentSettingsError::NotNormalForm { normal, .. } if normal == "push.example.test"),
            "{not_normal}"
        );
    }

    #[test]
    fn every_broken_key_is_named() {
        let mut settings = parse(
            r#"{"jid": "a@push.example.test", "port": 0, "host": " ", "reconnect_max": "0s",
                "max_concurrent_iqs": 0, "max_depth": 11, "max_stanza_bytes": 8192,
                "max_request_bytes_in_flight": 4096}"#,
        );
        let problems = settings.resolve_and_check();
        assert_eq!(
            keys(&problems),
            [
                "jid",
                "secret",
                "port",
                "host",
                "reconnect_max",
                "max_concurrent_iqs",
                "max_depth",
                "max_request_bytes_in_flight"
            ]
        );
        assert_eq!(problems[6].to_string(), "must be at least 12");
    }

    #[test]
    fn the_secret_file_is_read_and_excludes_the_secret() {
        let path = std::env::temp_dir().join(format!("pushgate-component-{}", std::process::id()));
        std::fs::write(&path, "from-a-file\n").expect("write");
        let table = format!(r#"{{"jid": "push.example.test", "secret_file": {path:?}}}"#);
        let mut settings = parse(&table);
        assert_eq!(keys(&settings.resolve_and_check()), Vec::<&str>::new());
        assert_eq!(settings.secret.expose(), "from-a-file");

        std::fs::write(&path, "\n").expect("write");
        let mut empty = parse(&table);
        assert_eq!(keys(&empty.resolve_and_check()), ["secret"]);

        let mut both = parse(&table);
        both.secret = SecretString::new("also");
        let problems = both.resolve_and_check();
        assert!(
            matches!(problems[..], [ComponentSettingsError::SecretAndSecretFile]),
            "{problems:?}"
        );

        let _ = std::fs::remove_file(&path);
        let mut missing = parse(&table);
        let problems = missing.resolve_and_check();
        assert_eq!(keys(&problems), ["secret_file"]);
        assert!(problems[0].to_string().starts_with("cannot read "));
    }
}
