//! The value types the sections use, all from `pushgate_core::settings`, where every crate's
//! section can use them: durations, lenient strings, secrets that never print.

pub use pushgate_core::settings::{HumanDuration, REDACTED, SecretString, lenient_string};
