//! The maintenance rounds of a SQLite file: free pages back to the file system, the WAL folded
//! in and truncated. One task per store, on a connection of its own.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _, Row as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sqlite::connection_pragmas;

/// How long the maintenance connection waits for a lock before leaving the work to the next
/// round. Short, because a `TRUNCATE` checkpoint holds off writers while it waits for readers.
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Free pages below this many are left for new rows to reuse.
const VACUUM_FROM_PAGES: i64 = 256;

/// Pages freed per `incremental_vacuum` transaction (1 MiB of 4 KiB pages): writers wait at most
/// one such step for the lock, and one step (pages moved, their parents and pointer-map pages)
/// stays well inside the WAL's size limit.
const VACUUM_STEP_PAGES: u32 = 256;

/// The most steps per round (1 GiB); what is left waits for the next round.
const VACUUM_MAX_STEPS: u32 = 1024;

/// The running rounds; stopped by [`Maintenance::stop`] or when the last store clone drops.
#[derive(Debug)]
pub(crate) struct Maintenance {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Maintenance {
    /// Starts a round every `interval` on a connection opened with `options`.
    pub(crate) fn start(options: AnyConnectOptions, interval: Duration) -> Arc<Self> {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(options, interval, stopped));
        Arc::new(Self {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the rounds, letting one under way finish, and closes their connection.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // A round that panicked has nothing left to clean up.
            let _ = task.await;
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Rounds until stopped.
async fn run(options: AnyConnectOptions, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut connection = None;
    loop {
        tokio::select! {
            biased;
            // A stop sent, or the sender gone with the last store clone.
            _ = stopped.changed() => break,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(error) = round(&mut connection, &options, &stopped).await {
            if is_busy(&error) {
                tracing::debug!("SQLite maintenance found the database busy; next round");
            } else {
                tracing::warn!(%error, "SQLite maintenance failed; trying again next round");
                // A fresh connection next time, in case this one is the trouble.
                if let Some(broken) = connection.take() {
                    let _ = broken.close().await;
                }
            }
        }
    }
    if let Some(connection) = connection {
        let _ = connection.close().await;
    }
}

/// One round: free pages back to the file system, then the WAL folded in and truncated.
async fn round(
    connection: &mut Option<AnyConnection>,
    options: &AnyConnectOptions,
    stopped: &watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    let connection = match connection {
        Some(connection) => connection,
        None => {
            let mut opened = AnyConnection::connect_with(options).await?;
            opened
                .execute(AssertSqlSafe(connection_pragmas(BUSY_TIMEOUT)))
                .await?;
            connection.insert(opened)
        }
    };

    let mut free = free_pages(connection).await?;
    if free >= VACUUM_FROM_PAGES {
        let step = format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})");
        for _ in 0..VACUUM_MAX_STEPS {
            if free == 0 || *stopped.borrow() {
                break;
            }
            connection.execute(AssertSqlSafe(step.clone())).await?;
            free = free_pages(connection).await?;
        }
    }

    // TRUNCATE also truncates the database file to the pages the vacuum kept. A reader or
    // writer still busy after the timeout makes it fold in what it can and say so.
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *connection)
        .await?;
    if row.try_get::<i64, _>(0)? != 0 {
        tracing::debug!("SQLite checkpoint could not finish; next round");
    }
    Ok(())
}

async fn free_pages(connection: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(connection)
        .await
}

/// Whether SQLite answered `SQLITE_BUSY` (any of its extended codes).
fn is_busy(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}
