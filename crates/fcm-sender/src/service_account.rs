//! Google's service-account key file: who pushgate is to FCM (docs/protocol.md A.2, OAuth2).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::private_key::{PrivateKeyPem, PrivateKeyProblem};

/// The fields of a service-account key that the FCM HTTP v1 API and its OAuth2 grant need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The Firebase project, part of the send URL.
    pub project_id: String,
    /// The key's id, sent as the JWT `kid`.
    pub private_key_id: String,
    /// The RSA key that signs the JWT bearer grant (RS256).
    pub private_key: PrivateKeyPem,
    /// The service account's address, the JWT `iss`.
    pub client_email: String,
    /// Where the grant is exchanged for an access token, and the JWT `aud`.
    pub token_uri: String,
}

/// Why a service-account key cannot be used. Never quotes the private key.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    /// The file could not be read.
    #[error("cannot read the service account file {}: {source}", path.display())]
    Read {
        /// The configured path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The key was read but is not a usable service-account key.
    #[error("{}: {problem}", Origin(file.as_deref()))]
    Invalid {
        /// The file it came from, if it came from a file.
        file: Option<PathBuf>,
        /// What is wrong with it.
        problem: ServiceAccountProblem,
    },
}

impl ServiceAccountError {
    /// The JSON field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { problem, .. } => problem.field(),
        }
    }

    /// The file the key came from, if it came from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Read { path, .. } => Some(path),
            Self::Invalid { file, .. } => file.as_deref(),
        }
    }
}

/// What is wrong inside a service-account key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountProblem {
    /// Not JSON at all (the position only: the text may hold the key).
    #[error("is not JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// JSON, but not an object.
    #[error("is not a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("has no `{field}` field")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A field is not a string.
    #[error("`{field}` is not a string")]
    NotAString {
        /// The field's name.
        field: &'static str,
    },
    /// A field is an empty string.
    #[error("`{field}` is empty")]
    EmptyField {
        /// The field's name.
        field: &'static str,
    },
    /// `type` is not `service_account` (e.g. a user's `authorized_user` credentials).
    #[error("`type` is {found:?}, but only \"service_account\" keys can send to FCM")]
    NotAServiceAccount {
        /// The `type` found, or "something else" when it does not look like a type name.
        found: String,
    },
    /// `project_id` has characters a Google Cloud project id never has.
    #[error("`project_id` is not a Google Cloud project id")]
    BadProjectId,
    /// `client_email` is not an address.
    #[error("`client_email` is not an e-mail address")]
    BadClientEmail,
    /// `token_uri` is not an absolute http(s) URL.
    #[error("`token_uri` is not an http(s) URL")]
    BadTokenUri,
    /// `private_key` is not a usable key.
    #[error("`private_key` {0}")]
    BadPrivateKey(PrivateKeyProblem),
}

impl ServiceAccountProblem {
    /// The JSON field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NotJson { .. } | Self::NotAnObject => None,
            Self::MissingField { field }
            | Self::NotAString { field }
            | Self::EmptyField { field } => Some(field),
            Self::NotAServiceAccount { .. } => Some("type"),
            Self::BadProjectId => Some("project_id"),
            Self::BadClientEmail => Some("client_email"),
            Self::BadTokenUri => Some("token_uri"),
            Self::BadPrivateKey(_) => Some("private_key"),
        }
    }
}

/// Names where a key came from in an error message.
struct Origin<'a>(Option<&'a Path>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "the service account file {}", path.display()),
            None => f.write_str("the service account JSON"),
        }
    }
}

impl ServiceAccount {
    /// Reads and checks the key file at `path` (the `[fcm] service_account_file` setting).
    pub fn from_file(path: &Path) -> Result<Self, ServiceAccountError> {
        let json = std::fs::read_to_string(path).map_err(|source| ServiceAccountError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse(&json).map_err(|problem| ServiceAccountError::Invalid {
            file: Some(path.to_owned()),
            problem,
        })
    }

    /// Checks a key given as JSON text.
    pub fn from_json(json: &str) -> Result<Self, ServiceAccountError> {
        parse(json).map_err(|problem| ServiceAccountError::Invalid {
            file: None,
            problem,
        })
    }
}

fn parse(json: &str) -> Result<ServiceAccount, ServiceAccountProblem> {
    // Parsed as a `Value` first so that no error message can echo a field's content.
    let value: Value =
        serde_json::from_str(json).map_err(|error| ServiceAccountProblem::NotJson {
            line: error.line(),
            column: error.column(),
        })?;
    let Value::Object(fields) = value else {
        return Err(ServiceAccountProblem::NotAnObject);
    };

    let kind = string(&fields, "type")?;
    if kind != "service_account" {
        // Echo only what looks like a credential type: the field could hold anything.
        let looks_like_a_type = kind.len() <= 40
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        return Err(ServiceAccountProblem::NotAServiceAccount {
            found: if looks_like_a_type {
                kind.to_owned()
            } else {
                "something else".to_owned()
            },
        });
    }
    let project_id = string(&fields, "project_id")?;
    // Project ids are lowercase letters, digits and hyphens; old domain-scoped ids add
    // `example.com:`. Anything else could not sit in the send URL's path unescaped.
    let project_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_');
    if !project_id.chars().all(project_char) {
        return Err(ServiceAccountProblem::BadProjectId);
    }
    let private_key_id = string(&fields, "private_key_id")?;
    let private_key = PrivateKeyPem::parse(string(&fields, "private_key")?)
        .map_err(ServiceAccountProblem::BadPrivateKey)?;
    let client_email = string(&fields, "client_email")?;
    if !client_email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
    {
        return Err(ServiceAccountProblem::BadClientEmail);
    }
    let token_uri = string(&fields, "token_uri")?;
    if !is_http_url(token_uri) {
        return Err(ServiceAccountProblem::BadTokenUri);
    }

    Ok(ServiceAccount {
        project_id: project_id.to_owned(),
        private_key_id: private_key_id.to_owned(),
        private_key,
        client_email: client_email.to_owned(),
        token_uri: token_uri.to_owned(),
    })
}

/// A required, non-empty string field.
fn string<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ServiceAccountProblem> {
    match fields.get(field) {
        None => Err(ServiceAccountProblem::MissingField { field }),
        Some(Value::String(text)) if text.trim().is_empty() => {
            Err(ServiceAccountProblem::EmptyField { field })
        }
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ServiceAccountProblem::NotAString { field }),
    }
}

/// Whether `text` is an absolute `http` or `https` URL with a host.
pub(crate) fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    })
}
