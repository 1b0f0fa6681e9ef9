//! Runs one scenario on one backend, each run in a database of its own.
//!
//! SQLite always runs, in a temporary file. PostgreSQL runs when `PUSHGATE_TEST_POSTGRES_URL`
//! is set and MariaDB/MySQL when `PUSHGATE_TEST_MYSQL_URL` is set; each run creates a schema
//! (PostgreSQL) or database (MySQL) with a random name and drops it afterwards, so tests in
//! parallel never see each other's rows. A variable that is set but names no reachable server
//! fails the test.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _};

use pushgate_store::{Backend, SqlStore, StoreConfig};

/// Where a scenario's database is.
#[derive(Clone, Debug)]
pub struct TestDb {
    /// The URL of the scenario's own database.
    pub url: String,
    /// Its backend.
    pub backend: Backend,
}

impl TestDb {
    /// Settings with test-sized timeouts.
    pub fn config(&self) -> StoreConfig {
        StoreConfig {
            acquire_timeout: Duration::from_secs(10),
            ..StoreConfig::new(self.url.clone())
        }
    }

    /// A connected, migrated store.
    pub async fn connect(&self) -> SqlStore {
        SqlStore::connect(&self.config())
            .await
            .expect("connect test store")
    }
}

/// A scenario, boxed so one runner takes them all.
pub type Scenario = fn(TestDb) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Creates the database, runs `scenario` in its own task (so a failing assertion still lets
/// the database be dropped), drops the database and re-raises any failure.
pub async fn run(backend: Backend, scenario: Scenario) {
    let Some(place) = Place::create(backend).await else {
        return;
    };
    let outcome = tokio::spawn(scenario(place.db.clone())).await;
    place.drop_database().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

struct Place {
    db: TestDb,
    // Removed with the directory when the place is dropped (SQLite).
    _dir: Option<tempfile::TempDir>,
    // The server URL and the statement that drops the scenario's schema or database.
    cleanup: Option<(String, String)>,
}

impl Place {
    async fn create(backend: Backend) -> Option<Place> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("pushgate.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                Some(Place {
                    db: TestDb { url, backend },
                    _dir: Some(dir),
                    cleanup: None,
                })
            }
            Backend::Postgres => {
                let server = server_url("PUSHGATE_TEST_POSTGRES_URL")?;
                let schema = random_name();
                execute(&server, &format!("CREATE SCHEMA {schema}")).await;
                let separator = if server.contains('?') { '&' } else { '?' };
                // `options=-c search_path=<schema>`: every table, the migration table included,
                // lands in the scenario's schema.
                let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
                Some(Place {
                    db: TestDb { url, backend },
                    _dir: None,
                    cleanup: Some((server, format!("DROP SCHEMA {schema} CASCADE"))),
                })
            }
            Backend::MySql => {
                let server = server_url("PUSHGATE_TEST_MYSQL_URL")?;
                let database = random_name();
                execute(&server, &format!("CREATE DATABASE {database}")).await;
                let url = with_database(&server, &database);
                Some(Place {
                    db: TestDb { url, backend },
                    _dir: None,
                    cleanup: Some((server, format!("DROP DATABASE {database}"))),
                })
            }
        }
    }

    async fn drop_database(&self) {
        if let Some((server, statement)) = &self.cleanup {
            execute(server, statement).await;
        }
    }
}

fn server_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {variable} is not set");
            None
        }
    }
}

fn random_name() -> String {
    format!("pushgate_test_{:016x}", rand::random::<u64>())
}

/// `scheme://authority/<database>?query` from a server URL.
fn with_database(server: &str, database: &str) -> String {
    let (scheme, rest) = server.split_once("://").expect("server URL has a scheme");
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

async fn execute(server: &str, statement: &str) {
    sqlx::any::install_default_drivers();
    let mut connection =
        tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect(server))
            .await
            .unwrap_or_else(|_| panic!("test database server did not answer: {statement}"))
            .unwrap_or_else(|error| panic!("test database server unreachable: {error}"));
    connection
        .execute(AssertSqlSafe(statement.to_owned()))
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    let _ = connection.close().await;
}

/// One `#[tokio::test]` per scenario and backend: `sqlite::name`, `postgres::name`,
/// `mysql::name`.
macro_rules! on_every_backend {
    ($($name:ident => $scenario:path),* $(,)?) => {
        on_every_backend!(@backend sqlite, Sqlite, $($name => $scenario),*);
        on_every_backend!(@backend postgres, Postgres, $($name => $scenario),*);
        on_every_backend!(@backend mysql, MySql, $($name => $scenario),*);
    };
    (@backend $module:ident, $backend:ident, $($name:ident => $scenario:path),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run(pushgate_store::Backend::$backend, |db| {
                        Box::pin($scenario(db))
                    })
                    .await;
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;
