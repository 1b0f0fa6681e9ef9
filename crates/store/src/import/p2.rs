//! p2's database (the Conversations Push Proxy), read for `pushgate import-p2`.
//!
//! p2 keeps one table, created at its start-up on MariaDB (docs/protocol.md B.1.4):
//!
//! ```sql
//! create table if not exists target(service char(4), device CHAR(40) NOT NULL,
//!   channel CHAR(40) NOT NULL DEFAULT '', domain varchar(253), token varchar(255),
//!   node char(12), secret char(24), primary key(device, channel),
//!   index nodeDomain (node,domain));
//! ```
//!
//! [`P2Source`] reads it page by page in primary-key order, and [`P2Row::to_registration`]
//! turns a row into the registration pushgate stores, or says why it cannot be kept. Only
//! reads: p2's database is never written.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};

use pushgate_core::{DeviceHash, Node, PushService, Registration, Secret, UnixMillis};

use crate::setup::{redact_text, redact_url};

/// Rows read per query: enough to keep the round trips few, small enough that a large p2
/// installation is never held in memory at once.
const PAGE_SIZE: u32 = 1000;

/// How long connecting to p2's database may take before the import gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest domain and push token pushgate's schema holds (crate docs).
const MAX_DOMAIN_LEN: usize = 1023;
const MAX_TOKEN_LEN: usize = 4096;

/// Why p2's database could not be read. No variant prints the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum P2SourceError {
    /// The URL names no MySQL/MariaDB database.
    #[error(
        "the p2 database URL must start with mysql:// or mariadb:// (it starts with `{scheme}`)"
    )]
    UnsupportedUrl {
        /// The scheme found (before the first `:`).
        scheme: String,
    },
    /// The URL could not be parsed.
    #[error("the p2 database URL is not valid: {reason}")]
    BadUrl {
        /// What the parser said, with any password removed.
        reason: String,
    },
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to p2's database at {url}: {reason}")]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the driver said, with any password removed.
        reason: String,
    },
    /// The `target` table could not be read.
    #[error("cannot read p2's `target` table at {url}: {reason}")]
    Read {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the driver said, with any password removed.
        reason: String,
    },
}

impl P2SourceError {
    /// Whether the URL itself is wrong (the caller's argument), rather than the database
    /// being unreachable or unreadable.
    pub fn is_bad_url(&self) -> bool {
        matches!(self, Self::UnsupportedUrl { .. } | Self::BadUrl { .. })
    }
}

/// p2's database, open for reading its `target` table.
pub struct P2Source {
    pool: MySqlPool,
    /// The URL with its password replaced, for messages.
    url: String,
    /// The primary key (device, channel) of the last row read; the next page starts after it.
    after: Option<(String, String)>,
}

impl fmt::Debug for P2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2Source")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl P2Source {
    /// Connects to the MySQL/MariaDB database `url` names (`mysql://user:pass@host/db`;
    /// `mariadb://` works too).
    pub async fn connect(url: &str) -> Result<Self, P2SourceError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let rest = match scheme.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => &url[scheme.len()..],
            _ => {
                return Err(P2SourceError::UnsupportedUrl {
                    // Only the scheme: the rest may hold a password.
                    scheme: scheme.chars().take(32).collect(),
                });
            }
        };
        // The driver reads the URL's parts whatever its scheme; `mysql` keeps it simple.
        let options = MySqlConnectOptions::from_str(&format!("mysql{rest}")).map_err(|error| {
            P2SourceError::BadUrl {
                reason: redact_text(&error.to_string(), url),
            }
        })?;
        let redacted = redact_url(url);
        // One connection: the import reads one page at a time.
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| P2SourceError::Connect {
                url: redacted.clone(),
                reason: redact_text(&error.to_string(), url),
            })?;
        Ok(Self {
            pool,
            url: redacted,
            after: None,
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// The next rows of `target` in primary-key order; empty once every row was read.
    pub async fn next_page(&mut self) -> Result<Vec<P2Row>, P2SourceError> {
        let query = match &self.after {
            None => sqlx::query(FIRST_PAGE).bind(PAGE_SIZE),
            Some((device, channel)) => sqlx::query(NEXT_PAGE)
                .bind(device.clone())
                .bind(device.clone())
                .bind(channel.clone())
                .bind(PAGE_SIZE),
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|error| self.read_error(&error))?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            page.push(P2Row::read(row).map_err(|error| self.read_error(&error))?);
        }
        if let Some(last) = page.last() {
            self.after = Some((last.device.clone(), last.channel.clone()));
        }
        Ok(page)
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn read_error(&self, error: &sqlx::Error) -> P2SourceError {
        P2SourceError::Read {
            url: self.url.clone(),
            // The driver's errors (server messages, decoding) carry no URL, so no password.
            reason: error.to_string(),
        }
    }
}

/// The first page of `target`, in primary-key order.
const FIRST_PAGE: &str = "SELECT service, device, channel, domain, token, node, secret \
     FROM target ORDER BY device, channel LIMIT ?";

/// The page after the row (device, channel): bind device, device, channel, page size.
/// Paging by key rather than by offset: each page is an index range scan, however deep.
const NEXT_PAGE: &str = "SELECT service, device, channel, domain, token, node, secret \
     FROM target WHERE device > ? OR (device = ? AND channel > ?) \
     ORDER BY device, channel LIMIT ?";

/// A column of `target` that a row can be skipped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum P2Field {
    /// `service`.
    Service,
    /// `device`.
    Device,
    /// `domain`.
    Domain,
    /// `token`.
    Token,
    /// `node`.
    Node,
    /// `secret`.
    Secret,
}

impl P2Field {
    /// The column's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Device => "device",
            Self::Domain => "domain",
            Self::Token => "token",
            Self::Node => "node",
            Self::Secret => "secret",
        }
    }
}

/// Why a row of `target` is not imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// A channel (MUC) registration: p2 never served those (docs/protocol.md B.1.4), and
    /// pushgate refuses `muc` registrations.
    ChannelRegistration,
    /// The column is NULL.
    Missing(P2Field),
    /// The column could not be read as text.
    Unreadable(P2Field),
    /// The value is not what p2 writes there (a 40-hex device hash, a 12-character node, a
    /// 24-character secret, all standard base64; a non-empty domain and token).
    Malformed(P2Field),
    /// `service` is neither `FCM` nor `APNS`.
    UnknownService,
}

impl SkipReason {
    /// A stable machine-readable name: `channel_registration`, `null_token`,
    /// `unreadable_domain`, `malformed_node`, `unknown_service`, ….
    pub fn key(self) -> String {
        match self {
            Self::ChannelRegistration => "channel_registration".to_owned(),
            Self::Missing(field) => format!("null_{}", field.as_str()),
            Self::Unreadable(field) => format!("unreadable_{}", field.as_str()),
            Self::Malformed(field) => format!("malformed_{}", field.as_str()),
            Self::UnknownService => "unknown_service".to_owned(),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelRegistration => {
                f.write_str("channel (MUC) registration, which p2 could never serve")
            }
            Self::Missing(field) => write!(f, "`{}` is NULL", field.as_str()),
            Self::Unreadable(field) => write!(f, "`{}` is not readable as text", field.as_str()),
            Self::Malformed(field) => {
                write!(f, "`{}` is not in the form p2 writes", field.as_str())
            }
            Self::UnknownService => f.write_str("`service` is neither FCM nor APNS"),
        }
    }
}

/// A nullable column as read: its text, NULL, or not readable.
type Column = Result<Option<String>, ()>;

/// One row of `target`, as read. Its `Debug` shows no value: the row holds a push token and
/// a publish secret.
pub struct P2Row {
    service: Column,
    device: String,
    channel: String,
    domain: Column,
    token: Column,
    node: Column,
    secret: Column,
}

impl fmt::Debug for P2Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P2Row(…)")
    }
}

impl P2Row {
    /// Reads a row. `device` and `channel` are the primary key (`NOT NULL`) and page the
    /// reads, so failing to read them fails the read; any other column that cannot be read
    /// only makes this row skipped.
    fn read(row: &MySqlRow) -> Result<Self, sqlx::Error> {
        let column = |name: &str| row.try_get::<Option<String>, _>(name).map_err(|_| ());
        Ok(Self {
            service: column("service"),
            device: row.try_get("device")?,
            channel: row.try_get("channel")?,
            domain: column("domain"),
            token: column("token"),
            node: column("node"),
            secret: column("secret"),
        })
    }

    /// A row from its column values (`Some` text or NULL), for tests of the conversion.
    #[cfg(test)]
    fn from_values(
        service: Option<&str>,
        device: &str,
        channel: &str,
        domain: Option<&str>,
        token: Option<&str>,
        node: Option<&str>,
        secret: Option<&str>,
    ) -> Self {
        let value = |text: Option<&str>| Ok(text.map(str::to_owned));
        Self {
            service: value(service),
            device: device.to_owned(),
            channel: channel.to_owned(),
            domain: value(domain),
            token: value(token),
            node: value(node),
            secret: value(secret),
        }
    }

    /// The registration to store for this row, with `now` as its creation and update time,
    /// or why the row cannot be kept. Values are kept exactly (nothing trimmed or re-cased):
    /// the user's server publishes with the node and secret it holds, and the phone reads the
    /// device hash back from the wake-up.
    pub fn to_registration(&self, now: UnixMillis) -> Result<Registration, SkipReason> {
        // p2 stores MUC registrations with an empty channel (its insert leaves the column
        // out), so a non-empty one is a row p2 itself could never have served.
        if !self.channel.is_empty() {
            return Err(SkipReason::ChannelRegistration);
        }
        let service = required(&self.service, P2Field::Service)?;
        let service = PushService::parse(service).ok_or(SkipReason::UnknownService)?;
        let device =
            DeviceHash::from_hex(&self.device).ok_or(SkipReason::Malformed(P2Field::Device))?;
        let domain = required(&self.domain, P2Field::Domain)?;
        if domain.is_empty() || domain.len() > MAX_DOMAIN_LEN {
            return Err(SkipReason::Malformed(P2Field::Domain));
        }
        let token = required(&self.token, P2Field::Token)?;
        if token.trim().is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(SkipReason::Malformed(P2Field::Token));
        }
        let node = required(&self.node, P2Field::Node)?;
        if !is_base64_of_len(node, 12) {
            return Err(SkipReason::Malformed(P2Field::Node));
        }
        let secret = required(&self.secret, P2Field::Secret)?;
        if !is_base64_of_len(secret, 24) {
            return Err(SkipReason::Malformed(P2Field::Secret));
        }
        Ok(Registration {
            service,
            device,
            domain: domain.to_owned(),
            token: token.to_owned(),
            node: Node::new(node),
            secret: Secret::new(secret),
            created_at: now,
            updated_at: now,
            dead_since: None,
        })
    }
}

fn required(column: &Column, field: P2Field) -> Result<&str, SkipReason> {
    match column {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(SkipReason::Missing(field)),
        Err(()) => Err(SkipReason::Unreadable(field)),
    }
}

/// Whether `text` is `len` characters of standard base64 without padding, as p2's nodes
/// (9 random bytes) and secrets (18) are (docs/protocol.md B.1.3).
fn is_base64_of_len(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";
    const NODE: &str = "ab+/CDef0123";
    const SECRET: &str = "0123456789abcdefABCD+/xy";

    fn row(service: Option<&str>, channel: &str) -> P2Row {
        P2Row::from_values(
            service,
            DEVICE,
            channel,
            Some("example.test"),
            Some("fcm-token"),
            Some(NODE),
            Some(SECRET),
        )
    }

    #[test]
    fn a_p2_row_keeps_every_value() {
        let registration = row(Some("FCM"), "").to_registration(7).ok();
        let registration = registration.as_ref();
        assert_eq!(registration.map(|r| r.service), Some(PushService::Fcm));
        assert_eq!(registration.map(|r| r.device.as_str()), Some(DEVICE));
        assert_eq!(
            registration.map(|r| r.domain.as_str()),
            Some("example.test")
        );
        assert_eq!(registration.map(|r| r.token.as_str()), Some("fcm-token"));
        assert_eq!(registration.map(|r| r.node.as_str()), Some(NODE));
        assert_eq!(registration.map(|r| r.secret.expose()), Some(SECRET));
        assert_eq!(
            registration.map(|r| (r.created_at, r.updated_at)),
            Some((7, 7))
        );
        let apns = row(Some("APNS"), "").to_registration(7).map(|r| r.service);
        assert_eq!(apns, Ok(PushService::Apns));
    }

    #[test]
    fn rows_p2_could_not_serve_or_that_are_damaged_are_skipped_with_a_reason() {
        let channel = "0123456789abcdef0123456789abcdef01234567";
        let skipped = |row: P2Row| row.to_registration(0).err();
        assert_eq!(
            skipped(row(Some("FCM"), channel)),
            Some(SkipReason::ChannelRegistration)
        );
        assert_eq!(
            skipped(row(None, "")),
            Some(SkipReason::Missing(P2Field::Service))
        );
        assert_eq!(
            skipped(row(Some("GCM"), "")),
            Some(SkipReason::UnknownService)
        );
        let with = |device: &str, domain, token, node, secret| {
            P2Row::from_values(Some("FCM"), device, "", domain, token, node, secret)
        };
        let ok = (Some("example.test"), Some("t"), Some(NODE), Some(SECRET));
        let cases = [
            (
                with(&DEVICE.to_uppercase(), ok.0, ok.1, ok.2, ok.3),
                SkipReason::Malformed(P2Field::Device),
            ),
            (
                with(DEVICE, None, ok.1, ok.2, ok.3),
                SkipReason::Missing(P2Field::Domain),
            ),
            (
                with(DEVICE, Some(""), ok.1, ok.2, ok.3),
                SkipReason::Malformed(P2Field::Domain),
            ),
            (
                with(DEVICE, ok.0, None, ok.2, ok.3),
                SkipReason::Missing(P2Field::Token),
            ),
            (
                with(DEVICE, ok.0, Some(" "), ok.2, ok.3),
                SkipReason::Malformed(P2Field::Token),
            ),
            (
                with(DEVICE, ok.0, ok.1, None, ok.3),
                SkipReason::Missing(P2Field::Node),
            ),
            (
                with(DEVICE, ok.0, ok.1, Some("short"), ok.3),
                SkipReason::Malformed(P2Field::Node),
            ),
            (
                with(DEVICE, ok.0, ok.1, ok.2, Some("0123456789abcdefABCD-_xy")),
                SkipReason::Malformed(P2Field::Secret),
            ),
        ];
        for (row, reason) in cases {
            assert_eq!(skipped(row), Some(reason), "{reason}");
        }
    }

    #[test]
    fn skip_reasons_have_stable_keys() {
        assert_eq!(
            SkipReason::ChannelRegistration.key(),
            "channel_registration"
        );
        assert_eq!(SkipReason::Missing(P2Field::Token).key(), "null_token");
        assert_eq!(SkipReason::Malformed(P2Field::Node).key(), "malformed_node");
        assert_eq!(
            SkipReason::Unreadable(P2Field::Domain).key(),
            "unreadable_domain"
        );
    }

    #[tokio::test]
    async fn urls_that_are_not_mysql_are_refused_without_printing_the_password() {
        let error = P2Source::connect("postgres://p2:hunter2@db/p2").await.err();
        assert!(error.as_ref().is_some_and(P2SourceError::is_bad_url));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("`postgres`"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
