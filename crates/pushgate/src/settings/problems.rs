//! Settings errors that say which key is wrong and where its value came from.

use std::fmt;
use std::path::PathBuf;

use figment::{Figment, Metadata, Source};

use super::ENV_PREFIX;
use super::validate::Finding;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file could not be opened.
    #[error("cannot open the settings file {} ({origin}): {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// How the file was chosen (`given by --config`, …).
        origin: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more keys are wrong.
    #[error("invalid settings:{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// Without a settings file: the data directory cannot be used.
    #[error("no settings file, and {0}")]
    DataDir(#[from] crate::first_run::DataDirError),
    /// The settings could not be written out (a bug).
    #[error("cannot render the settings: {0}")]
    Render(String),
}

/// One wrong key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`database.url`, `component[1].jid`); empty when the file as a whole is
    /// wrong (a TOML syntax error).
    pub key: String,
    /// Where the value came from: a file path, an environment variable, or `built-in default`.
    pub source: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(
                f,
                "key `{}` (from {}): {}",
                self.key, self.source, self.message
            )
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// The problems figment found while deserialising.
pub(crate) fn from_figment(error: figment::Error) -> Vec<Problem> {
    error
        .into_iter()
        .map(|error| {
            let mut path = error.path.clone();
            // figment may report a missing or unknown key at its parent; name the key itself.
            let field = match &error.kind {
                figment::error::Kind::UnknownField(field, _) => Some(field.clone()),
                figment::error::Kind::DuplicateField(field) => Some((*field).to_owned()),
                figment::error::Kind::MissingField(field) => Some(field.to_string()),
                _ => None,
            };
            if let Some(field) = field
                && path.last() != Some(&field)
            {
                path.push(field);
            }
            let source = match &error.kind {
                figment::error::Kind::MissingField(_) => {
                    "not set in the file or the environment".to_owned()
                }
                _ => describe(error.metadata.as_ref(), &path),
            };
            let message = match &error.kind {
                figment::error::Kind::UnknownField(field, expected) => format!(
                    "unknown key `{field}`{}",
                    if expected.is_empty() {
                        String::new()
                    } else {
                        format!("; expected one of: {}", expected.join(", "))
                    }
                ),
                figment::error::Kind::MissingField(_) => "missing; this key is required".to_owned(),
                figment::error::Kind::UnknownVariant(found, expected) => {
                    format!(
                        "unknown value `{found}`; expected one of: {}",
                        expected.join(", ")
                    )
                }
                kind => kind.to_string(),
            };
            Problem {
                key: path.join("."),
                source,
                message,
            }
        })
        .collect()
}

/// The problems the checks found, with the source of each key looked up in `figment`.
pub(crate) fn locate(figment: &Figment, findings: Vec<Finding>) -> Vec<Problem> {
    findings
        .into_iter()
        .map(|finding| {
            // The value may be unset (a default): fall back to its section's source.
            let mut lookup: Vec<String> = finding.lookup.split('.').map(str::to_owned).collect();
            let mut metadata = None;
            while !lookup.is_empty() {
                if let Some(found) = figment.find_metadata(&lookup.join(".")) {
                    metadata = Some(found);
                    break;
                }
                lookup.pop();
            }
            let path: Vec<String> = finding.lookup.split('.').map(str::to_owned).collect();
            Problem {
                key: finding.key,
                source: describe(metadata, &path),
                message: finding.message,
            }
        })
        .collect()
}

/// A file path, an environment variable name, or `built-in default`.
fn describe(metadata: Option<&Metadata>, path: &[String]) -> String {
    let Some(metadata) = metadata else {
        return "built-in default".to_owned();
    };
    match &metadata.source {
        Some(Source::File(file)) => file.display().to_string(),
        _ if metadata.name.contains("environment") => {
            let name: Vec<String> = path.iter().map(|part| part.to_ascii_uppercase()).collect();
            let variable = format!("{ENV_PREFIX}{}", name.join("__"));
            if std::env::var_os(&variable).is_some() {
                return format!("environment variable {variable}");
            }
            // Reported at a section that does not exist (`PUSHGATE_DATABSE__URL`): name the
            // variables under it, as they are written.
            let section = format!("{variable}__");
            let mut under: Vec<String> = std::env::vars_os()
                .filter_map(|(key, _)| key.into_string().ok())
                .filter(|key| key.to_ascii_uppercase().starts_with(&section))
                .collect();
            under.sort();
            if under.is_empty() {
                format!("environment variable {variable}")
            } else {
                format!("environment variable {}", under.join(", "))
            }
        }
        Some(source) => source.to_string(),
        None => metadata.name.to_string(),
    }
}
