//! RFC 8030 request headers: `TTL`, `Topic`, `Urgency`, validated.

use std::fmt;

/// Why a header was refused (the HTTP side answers 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `TTL` is not a non-negative integer (RFC 8030 §5.2).
    #[error("TTL must be a non-negative integer number of seconds")]
    BadTtl,
    /// `Topic` is longer than 32 characters or not in the URL-safe base64 alphabet
    /// (RFC 8030 §5.4).
    #[error("Topic must be at most 32 characters of the URL-safe base64 alphabet")]
    BadTopic,
    /// `Urgency` is not one of `very-low`, `low`, `normal`, `high` (RFC 8030 §5.3).
    #[error("Urgency must be very-low, low, normal or high")]
    BadUrgency,
}

/// Parses `TTL`: seconds, any size (clamped to `u32::MAX`; caps apply later).
pub fn parse_ttl(value: &str) -> Result<u32, HeaderError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::BadTtl);
    }
    Ok(value
        .parse::<u64>()
        .map_or(u32::MAX, |ttl| u32::try_from(ttl).unwrap_or(u32::MAX)))
}

/// A message topic: a newer message with the same topic replaces an undelivered one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    /// Parses a `Topic` header value.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let value = value.trim();
        let valid = !value.is_empty()
            && value.len() <= 32
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(HeaderError::BadTopic)
        }
    }

    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 8030 §5.3 urgency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// `very-low`
    VeryLow,
    /// `low`
    Low,
    /// `normal` (the default)
    Normal,
    /// `high`
    High,
}

impl Urgency {
    /// Parses an `Urgency` header value (case-insensitive).
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let value = value.trim();
        [Self::VeryLow, Self::Low, Self::Normal, Self::High]
            .into_iter()
            .find(|urgency| urgency.as_str().eq_ignore_ascii_case(value))
            .ok_or(HeaderError::BadUrgency)
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_only_digits() {
        assert_eq!(parse_ttl("0"), Ok(0));
        assert_eq!(parse_ttl(" 86400 "), Ok(86_400));
        assert_eq!(parse_ttl("99999999999999999999999"), Ok(u32::MAX));
        for bad in ["", "-1", "1.5", "1e3", "ten", "+5"] {
            assert_eq!(parse_ttl(bad), Err(HeaderError::BadTtl), "{bad}");
        }
    }

    #[test]
    fn topic_is_short_url_safe_base64() {
        assert_eq!(
            Topic::parse("new-mail_1").map(|t| t.0),
            Ok("new-mail_1".into())
        );
        assert!(Topic::parse(&"a".repeat(32)).is_ok());
        for bad in ["", "a b", "a/b", "a+b", "ü", &"a".repeat(33)] {
            assert_eq!(Topic::parse(bad), Err(HeaderError::BadTopic), "{bad}");
        }
    }

    #[test]
    fn urgency_values() {
        assert_eq!(Urgency::parse("very-low"), Ok(Urgency::VeryLow));
        assert_eq!(Urgency::parse("HIGH"), Ok(Urgency::High));
        assert_eq!(Urgency::parse("urgent"), Err(HeaderError::BadUrgency));
        assert!(Urgency::Low < Urgency::High);
    }
}
