//! The store itself: a pool on one backend, opened and migrated at connect.

use async_trait::async_trait;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor as _, Transaction};

use pushgate_core::{AccountKey, Store, StoreError};

use crate::message_batches::MessageWriter;
use crate::migrations::migrator;
use crate::setup::{Backend, StoreConfig, StoreSetupError, is_sqlite_memory, redact_url};
use crate::sqlite::{self, Maintenance};
use crate::statements::Statements;

/// pushgate's [`Store`](pushgate_core::Store) on SQLite, PostgreSQL or MySQL/MariaDB.
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) statements: &'static Statements,
    /// The installation's key for the account tags of registrations.
    pub(crate) account_key: AccountKey,
    /// SQLite file only: the rounds that keep the file and its WAL small.
    maintenance: Option<Arc<Maintenance>>,
    /// Where stored messages go to be written in shared transactions; `None` only in the
    /// writer task's own handle.
    pub(crate) writer: Option<Arc<MessageWriter>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens a pool on the database `config.url` names and brings its schema up to date.
    pub async fn connect(config: &StoreConfig) -> Result<SqlStore, StoreSetupError> {
        let url = config.url.as_str();
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let options =
            AnyConnectOptions::from_str(url).map_err(|e| StoreSetupError::connect(url, &e))?;

        let mut pool_options = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout);
        if backend == Backend::Sqlite {
            let pragmas = sqlite::connection_pragmas(config.sqlite_busy_timeout);
            pool_options = pool_options.after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(pragmas)).await?;
                    Ok(())
                })
            });
            if is_sqlite_memory(url) {
                // Each connection to `:memory:` is a database of its own: keep exactly one, for
                // ever, or the data vanishes with the connection.
                pool_options = pool_options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
        }
        let pool = pool_options
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreSetupError::connect(url, &e))?;

        let sqlite_file = backend == Backend::Sqlite && !is_sqlite_memory(url);
        if sqlite_file {
            sqlite::prepare_file(&pool)
                .await
                .map_err(|e| StoreSetupError::connect(url, &e))?;
        }

        migrator(backend)
            .run(&pool)
            .await
            .map_err(|e| StoreSetupError::migrate(url, &e))?;
        let statements = Statements::of(backend);
        let account_key = load_account_key(&pool, statements)
            .await
            .map_err(|e| StoreSetupError::migrate(url, &e))?;
        let interval = config.sqlite_maintenance_interval;
        let maintenance =
            (sqlite_file && !interval.is_zero()).then(|| Maintenance::start(options, interval));
        tracing::info!(backend = %backend, url = %redact_url(url), "store ready");
        let mut store = SqlStore {
            pool,
            backend,
            statements,
            account_key,
            maintenance,
            writer: None,
        };
        store.writer = Some(Arc::new(MessageWriter::start(store.clone())));
        Ok(store)
    }

    /// The database product behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stops the SQLite maintenance rounds and closes every connection; operations after this
    /// fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        if let Some(maintenance) = &self.maintenance {
            maintenance.stop().await;
        }
        self.pool.close().await;
    }

    /// A transaction for statements that write.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match &self.statements.begin_write {
            Some(begin) => self.pool.begin_with(begin.as_str()).await,
            None => self.pool.begin().await,
        }
    }
}

/// The installation's account key: drawn and stored the first time, read back ever after. Two
/// instances starting at once on one database both end with the key the first one stored.
async fn load_account_key(
    pool: &AnyPool,
    statements: &'static Statements,
) -> Result<AccountKey, sqlx::Error> {
    use sqlx::Row as _;
    sqlx::query(statements.insert_account_key.as_str())
        .bind(AccountKey::generate().to_hex())
        .execute(pool)
        .await?;
    let stored: String = sqlx::query(statements.read_account_key.as_str())
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    AccountKey::from_hex(&stored)
        .ok_or_else(|| sqlx::Error::Protocol("the stored account key is not 64 hex digits".into()))
}

/// The store error for a driver error: data that cannot be read back is corrupt, everything
/// else (connection, timeout, the server's own errors) is worth retrying later.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::AnyDriverError(_)
        | sqlx::Error::RowNotFound => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

/// Whether the server aborted a transaction only because another one touched the same rows
/// (SQLSTATE 40001 serialization failure or MySQL deadlock, 40P01 PostgreSQL deadlock): running
/// it again succeeds.
fn is_transient_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// Runs `attempt` again, up to three times in all, while it fails with a transient conflict.
pub(crate) async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < 3 && is_transient_conflict(&error) => {
                tracing::debug!(tries, "transaction conflict, retrying");
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// A `BIGINT` count read back as the `u64` callers see.
pub(crate) fn from_bigint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

/// Reads a `SELECT COUNT(*)` answer.
pub(crate) fn count_from_row(row: &sqlx::any::AnyRow) -> Result<u64, StoreError> {
    use sqlx::Row as _;
    from_bigint(row.try_get::<i64, _>(0).map_err(store_error)?)
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(self.statements.ping.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
