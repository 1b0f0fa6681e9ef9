//! Value types the crates' settings sections share, so that each crate can deserialise its own
//! section of `pushgate.toml` without depending on the binary: durations written as humantime
//! strings, strings that may arrive as numbers from the environment, secrets and URLs whose
//! password never print, and the reading of a `*_file` secret.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What a secret looks like in any output.
pub const REDACTED: &str = "<redacted>";

/// A duration written as a humantime string (`"30s"`, `"7d"`, `"1h 30m"`) and printed the way
/// humantime formats it (`"7days"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `seconds` seconds.
    pub const fn secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationText;

        impl Visitor<'_> for DurationText {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration such as "30s", "5m" or "7d""#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(value.trim())
                    .map(HumanDuration)
                    .map_err(|error| E::custom(format!("invalid duration {value:?}: {error}")))
            }
        }

        deserializer.deserialize_str(DurationText)
    }
}

/// `#[serde(with = "pushgate_core::settings::human_duration")]` on a [`Duration`] field: the
/// field stays a plain `Duration` in the crate's config and is written as [`HumanDuration`].
pub mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::HumanDuration;

    /// Writes `duration` as a humantime string.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        HumanDuration(*duration).serialize(serializer)
    }

    /// Reads a humantime string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        HumanDuration::deserialize(deserializer).map(HumanDuration::get)
    }
}

/// Accepts a string, and also a number or boolean as its text: environment values are parsed
/// by type, so `PUSHGATE_COMPONENT__SECRET=1234` arrives as a number.
struct Lenient;

impl Visitor<'_> for Lenient {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }
}

/// `#[serde(deserialize_with = "pushgate_core::settings::lenient_string")]`: a string field
/// that also takes a number or boolean from the environment, as its text.
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(Lenient)
}

/// A secret read from the settings. `Debug` and serialisation print [`REDACTED`], so that
/// `pushgate check-config` and log lines never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient_string(deserializer).map(Self)
    }
}

/// A secret file's content without its trailing line break: editors and `echo` add one that is
/// no part of the secret.
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_owned())
}

/// A URL with the password of its `user:password@` replaced by [`REDACTED`], for printing.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host/…; the last '@' before the query ends the userinfo, so a
    // password holding an unencoded '/' or '@' is still hidden whole (better too much than a leak).
    // Without a scheme (a proxy may be written `user:password@host:port`) the userinfo is
    // looked for all the same.
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..query_start].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let Some((user, _password)) = userinfo.split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}{user}:{REDACTED}{}", &rest[at..])
}

/// `#[serde(serialize_with = "pushgate_core::settings::serialize_redacted_url")]`: writes a URL
/// setting through [`redact_url`].
pub fn serialize_redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

/// [`serialize_redacted_url`] for an optional URL (skip `None` with `skip_serializing_if`).
pub fn serialize_redacted_optional_url<S: Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serialize_redacted_url(url, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_humantime() {
        let parsed: HumanDuration = serde_json::from_str(r#""7d""#).expect("parses");
        assert_eq!(parsed.get(), Duration::from_secs(7 * 86_400));
        assert_eq!(parsed.to_string(), "7days");
        assert!(serde_json::from_str::<HumanDuration>(r#""soon""#).is_err());
        assert!(serde_json::from_str::<HumanDuration>("30").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = SecretString::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&secret).expect("serialises"),
            r#""<redacted>""#
        );
        let from_number: SecretString = serde_json::from_str("1234").expect("parses");
        assert_eq!(from_number.expose(), "1234");
    }

    #[test]
    fn secret_files_lose_their_trailing_line_break_only() {
        let path = std::env::temp_dir().join(format!("pushgate-secret-{}", std::process::id()));
        std::fs::write(&path, " s3cret \r\n").expect("write");
        let read = read_secret_file(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.expect("reads"), " s3cret ");
        assert!(read_secret_file(Path::new("/nonexistent/pushgate-secret")).is_err());
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
        assert_eq!(
            redact_url("http://user:pass@proxy.local:3128"),
            "http://user:<redacted>@proxy.local:3128"
        );
        assert_eq!(
            redact_url("user:pass@proxy.local:3128"),
            "user:<redacted>@proxy.local:3128"
        );
    }
}
