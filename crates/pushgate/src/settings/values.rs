//! Value types of the binary's own sections: secrets that never print. Durations, lenient
//! strings and redacted URLs come from `pushgate_core::settings`, where every crate's section
//! can use them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use pushgate_core::settings::{HumanDuration, REDACTED, lenient_string};

/// A secret read from the settings. `Debug`, `Display` and serialisation print [`REDACTED`].
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
