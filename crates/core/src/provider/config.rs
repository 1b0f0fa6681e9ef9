//! The `[unified_push]` section of `pushgate.toml`, deserialised into [`UnifiedPushConfig`] as
//! it is, with its defaults and checks here; it builds the provider's [`ProviderConfig`] and
//! [`EndpointKeys`]. What needs another section (`push_timeout` below `http.request_timeout`,
//! `http.public_url` required once keys are set) is checked by the binary, which sees them all.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::ProviderConfig;
use crate::settings::{SecretString, human_duration, read_secret_file};
use crate::store::MessageStoreLimits;
use crate::unified_push::{EndpointKey, EndpointKeyError, EndpointKeys};

/// The shortest `registration_ttl`: clients renew 24 hours before expiry (docs/protocol.md B.5
/// trap 11), so a lifetime near a day would make them renew all the time.
pub const MIN_REGISTRATION_TTL: Duration = Duration::from_secs(2 * 86_400);

/// `[unified_push]`: the UnifiedPush provider role.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnifiedPushConfig {
    /// Endpoint token keys, standard base64 of 32 bytes each: the first seals, all open. A
    /// single string counts as a list of one (handy in the environment).
    #[serde(deserialize_with = "one_or_more_keys")]
    pub keys: Vec<SecretString>,
    /// A file with one key per line, instead of `keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_file: Option<PathBuf>,
    /// How long an endpoint handed out at registration stays valid.
    #[serde(with = "human_duration")]
    pub registration_ttl: Duration,
    /// The longest an undelivered message is kept, whatever its `TTL` asks (RFC 8030 §5.2).
    #[serde(with = "human_duration")]
    pub message_ttl_max: Duration,
    /// The most undelivered messages kept for one client; past it a POST gets 429.
    pub max_messages_per_owner: u32,
    /// The most undelivered messages kept in all; past it a POST gets 503.
    pub max_messages_total: u64,
    /// When not empty, only accounts of these domains may register.
    pub allowed_domains: Vec<String>,
    /// How long a push waits for the client's answer before it counts as not delivered (and
    /// is kept for later). Must stay below `http.request_timeout`.
    #[serde(with = "human_duration")]
    pub push_timeout: Duration,
    /// Sustained POSTs per second to one endpoint.
    pub endpoint_rate: u32,
    /// POSTs one endpoint may send in a burst.
    pub endpoint_burst: u32,
    /// Sustained POSTs per second from one client address (an IPv6 /64).
    pub client_rate: u32,
    /// POSTs one client address may send in a burst.
    pub client_burst: u32,
}

impl Default for UnifiedPushConfig {
    /// No keys (the role is off), endpoints valid 7 days, messages kept a day at most.
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            keys_file: None,
            registration_ttl: Duration::from_secs(7 * 86_400),
            message_ttl_max: Duration::from_secs(86_400),
            max_messages_per_owner: 100,
            max_messages_total: 100_000,
            allowed_domains: Vec::new(),
            push_timeout: Duration::from_secs(5),
            endpoint_rate: 10,
            endpoint_burst: 50,
            client_rate: 100,
            client_burst: 500,
        }
    }
}

/// One thing wrong with `[unified_push]`; [`key`](Self::key) names the key.
#[derive(Debug, thiserror::Error)]
pub enum UnifiedPushConfigError {
    /// Both `keys` and `keys_file` are set.
    #[error("set either unified_push.keys or unified_push.keys_file, not both")]
    KeysAndKeysFile,
    /// `keys_file` cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    UnreadableKeysFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// `keys_file` holds no key.
    #[error("{} holds no key", path.display())]
    EmptyKeysFile {
        /// The file.
        path: PathBuf,
    },
    /// A key is not standard base64.
    #[error("is not standard base64")]
    KeyNotBase64 {
        /// The key's place in the list (the line among the file's keys).
        index: usize,
        /// Whether the key came from `keys_file`.
        from_file: bool,
    },
    /// A key decodes to something other than 32 bytes.
    #[error(
        "decodes to {decoded} bytes; a key is exactly 32 bytes (e.g. `openssl rand -base64 32`)"
    )]
    KeyWrongLength {
        /// The key's place in the list (the line among the file's keys).
        index: usize,
        /// Whether the key came from `keys_file`.
        from_file: bool,
        /// How many bytes it decodes to.
        decoded: usize,
    },
    /// `push_timeout` is zero.
    #[error("must be longer than zero and shorter than http.request_timeout")]
    ZeroPushTimeout,
    /// `message_ttl_max` does not fit the provider's `u32` seconds.
    #[error("must be at most 136 years")]
    MessageTtlTooLong,
    /// A count or rate that must be at least 1 is zero; holds the key.
    #[error("must be at least 1")]
    Zero(&'static str),
    /// `registration_ttl` is shorter than [`MIN_REGISTRATION_TTL`].
    #[error("must be at least 2 days (clients renew 24 hours before expiry)")]
    RegistrationTtlTooShort,
}

impl UnifiedPushConfigError {
    /// The key within `[unified_push]` that is wrong, with the index of a key in the list
    /// (`keys[1]`, `keys_file[0]`).
    pub fn key(&self) -> String {
        match self {
            Self::KeyNotBase64 { index, from_file }
            | Self::KeyWrongLength {
                index, from_file, ..
            } => format!("{}[{index}]", keys_key(*from_file)),
            other => other.setting().to_owned(),
        }
    }

    /// The key whose value is wrong as it is set in the file or the environment: [`key`](Self::key)
    /// without the index.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::KeysAndKeysFile
            | Self::UnreadableKeysFile { .. }
            | Self::EmptyKeysFile { .. } => "keys_file",
            Self::KeyNotBase64 { from_file, .. } | Self::KeyWrongLength { from_file, .. } => {
                keys_key(*from_file)
            }
            Self::ZeroPushTimeout => "push_timeout",
            Self::MessageTtlTooLong => "message_ttl_max",
            Self::Zero(key) => key,
            Self::RegistrationTtlTooShort => "registration_ttl",
        }
    }
}

/// Where the keys were written: a key from the file is named by its line in `keys_file`.
fn keys_key(from_file: bool) -> &'static str {
    if from_file { "keys_file" } else { "keys" }
}

impl UnifiedPushConfig {
    /// Reads `keys_file` (when set) into `keys`, then checks the section: everything wrong
    /// with it, empty when it is usable.
    pub fn resolve_and_check(&mut self) -> Vec<UnifiedPushConfigError> {
        let mut problems = Vec::new();
        if let Err(problem) = self.read_keys_file() {
            problems.push(problem);
        }
        problems.extend(self.check());
        problems
    }

    /// Replaces `keys` with the keys of `keys_file`, one per line (blank lines skipped).
    fn read_keys_file(&mut self) -> Result<(), UnifiedPushConfigError> {
        let Some(path) = &self.keys_file else {
            return Ok(());
        };
        if !self.keys.is_empty() {
            return Err(UnifiedPushConfigError::KeysAndKeysFile);
        }
        let text = read_secret_file(path).map_err(|source| {
            UnifiedPushConfigError::UnreadableKeysFile {
                path: path.clone(),
                source,
            }
        })?;
        self.keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(SecretString::new)
            .collect();
        if self.keys.is_empty() {
            return Err(UnifiedPushConfigError::EmptyKeysFile { path: path.clone() });
        }
        Ok(())
    }

    /// Everything wrong with the section as it is (after [`resolve_and_check`](Self::resolve_and_check)
    /// read the keys file); empty when it is usable.
    pub fn check(&self) -> Vec<UnifiedPushConfigError> {
        let mut problems = Vec::new();
        let from_file = self.keys_file.is_some();
        for (index, key) in self.keys.iter().enumerate() {
            match EndpointKey::from_base64(key.expose()) {
                Ok(_) | Err(EndpointKeyError::NoKey) => {}
                Err(EndpointKeyError::NotBase64) => {
                    problems.push(UnifiedPushConfigError::KeyNotBase64 { index, from_file })
                }
                Err(EndpointKeyError::WrongLength { decoded }) => {
                    problems.push(UnifiedPushConfigError::KeyWrongLength {
                        index,
                        from_file,
                        decoded,
                    })
                }
            }
        }
        if self.push_timeout.is_zero() {
            problems.push(UnifiedPushConfigError::ZeroPushTimeout);
        }
        if self.message_ttl_max.as_secs() > u64::from(u32::MAX) {
            problems.push(UnifiedPushConfigError::MessageTtlTooLong);
        }
        for (key, value) in [
            (
                "max_messages_per_owner",
                u64::from(self.max_messages_per_owner),
            ),
            ("max_messages_total", self.max_messages_total),
            ("endpoint_rate", u64::from(self.endpoint_rate)),
            ("endpoint_burst", u64::from(self.endpoint_burst)),
            ("client_rate", u64::from(self.client_rate)),
            ("client_burst", u64::from(self.client_burst)),
        ] {
            if value == 0 {
                problems.push(UnifiedPushConfigError::Zero(key));
            }
        }
        if self.registration_ttl < MIN_REGISTRATION_TTL {
            problems.push(UnifiedPushConfigError::RegistrationTtlTooShort);
        }
        problems
    }

    /// The provider's endpoint keys; [`EndpointKeyError::NoKey`] when none is set.
    pub fn endpoint_keys(&self) -> Result<EndpointKeys, EndpointKeyError> {
        let keys = self
            .keys
            .iter()
            .map(|key| EndpointKey::from_base64(key.expose()))
            .collect::<Result<Vec<_>, _>>()?;
        EndpointKeys::new(keys)
    }

    /// The provider's behaviour, its endpoints under `public_url` (`http.public_url`).
    pub fn provider_config(&self, public_url: impl Into<String>) -> ProviderConfig {
        ProviderConfig {
            public_url: public_url.into(),
            registration_ttl_ms: i64::try_from(self.registration_ttl.as_millis())
                .unwrap_or(i64::MAX),
            // The check refuses more; saturate rather than wrap if it was skipped.
            max_message_ttl_secs: u32::try_from(self.message_ttl_max.as_secs()).unwrap_or(u32::MAX),
            store_limits: MessageStoreLimits {
                max_per_owner: self.max_messages_per_owner,
                max_total: self.max_messages_total,
            },
            allowed_domains: (!self.allowed_domains.is_empty())
                .then(|| self.allowed_domains.clone()),
        }
    }
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

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn keys(problems: &[UnifiedPushConfigError]) -> Vec<String> {
        problems.iter().map(UnifiedPushConfigError::key).collect()
    }

    #[test]
    fn the_section_reads_over_the_defaults_and_prints_keys_redacted() {
        let mut config: UnifiedPushConfig =
            serde_json::from_str(&format!(r#"{{"keys": "{KEY}", "push_timeout": "3s"}}"#))
                .expect("parses");
        assert_eq!(config.keys.len(), 1, "one string is a list of one");
        assert_eq!(config.push_timeout, Duration::from_secs(3));
        assert_eq!(config.registration_ttl, Duration::from_secs(7 * 86_400));
        assert!(config.resolve_and_check().is_empty());
        let printed = serde_json::to_string(&config).expect("serialises");
        assert!(printed.contains(r#""keys":["<redacted>"]"#), "{printed}");
        assert!(!printed.contains(KEY), "{printed}");
        assert!(
            printed.contains(r#""registration_ttl":"7days""#),
            "{printed}"
        );
        assert!(!printed.contains("keys_file"), "{printed}");

        let provider = config.provider_config("https://up.example");
        assert_eq!(provider.registration_ttl_ms, 7 * 86_400_000);
        assert_eq!(provider.max_message_ttl_secs, 86_400);
        assert_eq!(provider.allowed_domains, None);
        assert!(config.endpoint_keys().is_ok());
        assert!(UnifiedPushConfig::default().endpoint_keys().is_err());
    }

    #[test]
    fn bad_keys_zeros_and_short_lifetimes_are_named_by_their_key() {
        let config = UnifiedPushConfig {
            keys: vec![SecretString::new(KEY), SecretString::new("not base64!")],
            push_timeout: Duration::ZERO,
            endpoint_burst: 0,
            message_ttl_max: Duration::from_secs(u64::from(u32::MAX) + 1),
            registration_ttl: Duration::from_secs(86_400),
            ..UnifiedPushConfig::default()
        };
        assert_eq!(
            keys(&config.check()),
            [
                "keys[1]",
                "push_timeout",
                "message_ttl_max",
                "endpoint_burst",
                "registration_ttl"
            ]
        );
        let short = UnifiedPushConfig {
            keys: vec![SecretString::new("AAAA")],
            ..UnifiedPushConfig::default()
        };
        let problems = short.check();
        assert_eq!(keys(&problems), ["keys[0]"]);
        assert_eq!(problems[0].setting(), "keys");
        assert!(
            problems[0].to_string().starts_with("decodes to 3 bytes"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn keys_file_is_read_line_by_line_and_excludes_keys() {
        let path = std::env::temp_dir().join(format!("pushgate-up-keys-{}", std::process::id()));
        std::fs::write(&path, format!("{KEY}\n\n  nope  \n")).expect("write");
        let mut from_file = UnifiedPushConfig {
            keys_file: Some(path.clone()),
            ..UnifiedPushConfig::default()
        };
        let problems = from_file.resolve_and_check();
        assert_eq!(from_file.keys.len(), 2, "blank lines skipped");
        assert_eq!(keys(&problems), ["keys_file[1]"]);
        assert_eq!(problems[0].setting(), "keys_file");

        std::fs::write(&path, "\n").expect("write");
        let mut empty = UnifiedPushConfig {
            keys_file: Some(path.clone()),
            ..UnifiedPushConfig::default()
        };
        let problems = empty.resolve_and_check();
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(problems[..], [UnifiedPushConfigError::EmptyKeysFile { .. }]),
            "{problems:?}"
        );

        let mut both = UnifiedPushConfig {
            keys: vec![SecretString::new(KEY)],
            keys_file: Some(path.clone()),
            ..UnifiedPushConfig::default()
        };
        let problems = both.resolve_and_check();
        assert!(
            matches!(problems[..], [UnifiedPushConfigError::KeysAndKeysFile]),
            "{problems:?}"
        );

        let mut missing = UnifiedPushConfig {
            keys_file: Some(path),
            ..UnifiedPushConfig::default()
        };
        let problems = missing.resolve_and_check();
        assert_eq!(keys(&problems), ["keys_file"]);
        assert!(
            problems[0].to_string().starts_with("cannot read "),
            "{}",
            problems[0]
        );
    }
}
