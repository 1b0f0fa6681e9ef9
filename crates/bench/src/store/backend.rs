//! The databases `store` runs on, each run in an empty database of its own.
//!
//! SQLite is a file in a temp dir. PostgreSQL and MariaDB are servers named by
//! `PUSHGATE_BENCH_POSTGRES_URL` and `PUSHGATE_BENCH_MYSQL_URL` (defaults: the local test
//! servers); each run creates a schema (PostgreSQL) or database (MariaDB) of its own and drops it
//! afterwards, so it starts empty, pushgate migrates it at start, and the store tests others run
//! on the same server never see its rows. A server that cannot be reached is skipped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _};
use tempfile::TempDir;

use crate::error::BenchError;

/// How long a server may take to accept a connection before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A database product the benchmark runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Sqlite,
    Postgres,
    MariaDb,
}

impl Kind {
    /// Every backend, in the order they run.
    pub const ALL: [Kind; 3] = [Kind::Sqlite, Kind::Postgres, Kind::MariaDb];

    /// The product's name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
            Kind::MariaDb => "MariaDB",
        }
    }

    /// The variable naming the server, and the URL used when it is unset or empty.
    fn server(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Sqlite => None,
            Kind::Postgres => Some((
                "PUSHGATE_BENCH_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            )),
            Kind::MariaDb => Some((
                "PUSHGATE_BENCH_MYSQL_URL",
                "mysql://root@127.0.0.1:3306/test",
            )),
        }
    }
}

/// An empty database for one run.
pub(super) struct Place {
    /// The backend.
    pub kind: Kind,
    /// pushgate's `[database] url`.
    pub url: String,
    /// Where it is, for printing (no password).
    pub shown: String,
    // The SQLite file's directory, removed when the place is dropped; it outlives pushgate's
    // own temp dir so the rows can be counted after pushgate stopped.
    _dir: Option<TempDir>,
    // The server URL and the statement that drops the run's schema or database.
    cleanup: Option<(String, String)>,
}

/// What [`Place::create`] came to.
pub(super) enum Setup {
    /// The database is there, empty.
    Ready(Place),
    /// The server could not be reached or refused to make a database; why.
    Skipped(String),
}

impl Place {
    /// Creates an empty database for `kind`.
    pub async fn create(kind: Kind) -> Result<Setup, BenchError> {
        let Some((variable, default)) = kind.server() else {
            let dir = tempfile::Builder::new()
                .prefix("pushgate-bench-store-")
                .tempdir()
                .map_err(BenchError::io("create a temp dir for SQLite"))?;
            let path = dir.path().join("pushgate.db");
            return Ok(Setup::Ready(Place {
                kind,
                url: format!("sqlite://{}?mode=rwc", path.display()),
                shown: format!("file {}", path.display()),
                _dir: Some(dir),
                cleanup: None,
            }));
        };
        let server = match std::env::var(variable) {
            Ok(url) if !url.is_empty() => url,
            _ => default.to_owned(),
        };
        let name = run_name();
        let (url, shown, drop) = match kind {
            Kind::Postgres => {
                let separator = if server.contains('?') { '&' } else { '?' };
                // `options=-c search_path=<schema>`: every table pushgate makes, the migration
                // table included, lands in the run's schema.
                let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
                let shown = format!("schema {name} on {}", redact(&server));
                (url, shown, format!("DROP SCHEMA {name} CASCADE"))
            }
            _ => {
                let url = with_database(&server, &name);
                let shown = format!("database {name} on {}", redact(&server));
                (url, shown, format!("DROP DATABASE {name}"))
            }
        };
        let create = match kind {
            Kind::Postgres => format!("CREATE SCHEMA {name}"),
            _ => format!("CREATE DATABASE {name}"),
        };
        if let Err(reason) = execute(&server, &create).await {
            return Ok(Setup::Skipped(format!(
                "{} ({variable}): {reason}",
                redact(&server)
            )));
        }
        Ok(Setup::Ready(Place {
            kind,
            url,
            shown,
            _dir: None,
            cleanup: Some((server, drop)),
        }))
    }

    /// Rows in `stored_messages`.
    pub async fn stored_rows(&self) -> Result<i64, BenchError> {
        let mut connection = connect(&self.url)
            .await
            .map_err(|reason| BenchError::Database(format!("{}: {reason}", self.shown)))?;
        let rows: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT COUNT(*) FROM stored_messages")
                .fetch_one(&mut connection)
                .await;
        let _ = connection.close().await;
        rows.map_err(|error| {
            BenchError::Database(format!(
                "{}: count stored_messages: {}",
                self.shown,
                scrub(&error.to_string(), &self.url)
            ))
        })
    }

    /// Drops the run's schema or database (the SQLite file goes with its temp dir); a failure
    /// is printed, since the numbers are already out.
    pub async fn remove(self) {
        if let Some((server, statement)) = &self.cleanup
            && let Err(reason) = execute(server, statement).await
        {
            println!("could not drop {}: {reason}", self.shown);
        }
    }
}

/// A name no other run uses: `pushgate_bench_<pid>_<microseconds>`.
fn run_name() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros());
    format!("pushgate_bench_{}_{micros}", std::process::id())
}

/// Connects within [`CONNECT_TIMEOUT`]; the error never holds the URL's password.
async fn connect(url: &str) -> Result<AnyConnection, String> {
    sqlx::any::install_default_drivers();
    match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(scrub(&error.to_string(), url)),
        Err(_) => Err(format!(
            "no connection within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Runs one statement on `server`.
async fn execute(server: &str, statement: &str) -> Result<(), String> {
    let mut connection = connect(server).await?;
    let done = connection
        .execute(AssertSqlSafe(statement.to_owned()))
        .await
        .map(drop)
        .map_err(|error| format!("{statement}: {}", scrub(&error.to_string(), server)));
    let _ = connection.close().await;
    done
}

/// The `user:password@` part's password of `url`, if it has one.
fn password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `url` with its password replaced by `***`.
fn redact(url: &str) -> String {
    scrub(url, url)
}

/// `text` with the password of `url` replaced by `***`.
fn scrub(text: &str, url: &str) -> String {
    match password(url) {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}

/// `scheme://authority/<database>?query` from a server URL.
fn with_database(server: &str, database: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("mysql", server));
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_gets_its_own_database_in_the_server_url() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test", "run1"),
            "mysql://root@127.0.0.1:3306/run1"
        );
        assert_eq!(
            with_database("mysql://root:pw@db:3306/test?ssl-mode=disabled", "run1"),
            "mysql://root:pw@db:3306/run1?ssl-mode=disabled"
        );
        assert_eq!(
            with_database("mariadb://root@db", "run1"),
            "mariadb://root@db/run1"
        );
        let name = run_name();
        assert!(name.starts_with("pushgate_bench_"), "{name}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = "postgres://bench:s3cret@db:5432/test";
        assert_eq!(password(url), Some("s3cret"));
        assert_eq!(redact(url), "postgres://bench:***@db:5432/test");
        assert_eq!(
            scrub("password authentication failed (s3cret)", url),
            "password authentication failed (***)"
        );
        assert_eq!(password("postgres://postgres@127.0.0.1:5432/test"), None);
        assert_eq!(
            redact("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
    }
}
