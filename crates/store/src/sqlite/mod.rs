//! SQLite specifics: the settings every connection runs with, the file's one-time settings, and
//! the maintenance rounds that keep the file and its write-ahead log small.
//!
//! How big the files get:
//!
//! - The write-ahead log (WAL) is folded into the database by the writer whose commit takes it
//!   past [`WAL_AUTOCHECKPOINT_PAGES`], and the next writer starts it again from the top, cut
//!   back to [`JOURNAL_SIZE_LIMIT`] bytes if it grew past that. It grows further only while a
//!   reader keeps a snapshot older than the last checkpoint (pushgate's reads take
//!   milliseconds) or for one transaction larger than the limit (the one-time `VACUUM`). The
//!   maintenance round also checkpoints it with `TRUNCATE`, so an idle store's WAL is empty.
//! - Deleted rows leave free pages; the database is in `auto_vacuum = INCREMENTAL` mode and the
//!   maintenance round gives them back to the file system with `PRAGMA incremental_vacuum`.
//!
//! Durability: `synchronous = NORMAL`. In WAL mode a commit then does not wait for the disk;
//! the WAL is synced before each checkpoint and the database after it. A crash of pushgate
//! loses nothing committed; a power loss or operating system crash may undo the transactions
//! committed since the last checkpoint (at most about [`WAL_AUTOCHECKPOINT_PAGES`] pages of
//! writes, and no older than one maintenance round), and never corrupts the database.

mod maintenance;

use std::time::Duration;

use sqlx::{AnyPool, Executor as _};

pub(crate) use maintenance::Maintenance;

/// The WAL size, in pages, at which a commit checkpoints it (SQLite's default, set explicitly
/// since the bound on the WAL's size rests on it).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 1000;

/// What the WAL file is cut back to, in bytes, when it starts again from the top: twice what
/// [`WAL_AUTOCHECKPOINT_PAGES`] fills (4 KiB pages), so a log that is regularly checkpointed
/// is never cut and regrown, and one that grew during a long read is shrunk again.
pub(crate) const JOURNAL_SIZE_LIMIT: u64 = 8 << 20;

/// `PRAGMA auto_vacuum`'s value for `INCREMENTAL`.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// The statements each new connection runs first.
pub(crate) fn connection_pragmas(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
         PRAGMA temp_store = MEMORY; \
         PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};",
        busy_timeout.as_millis()
    )
}

/// Puts a database file in WAL and incremental auto-vacuum mode; both are stored in the file,
/// so doing it once, before the pool is shared, covers every later connection.
///
/// `auto_vacuum` takes effect at once only on a file without tables, and only if set before
/// the journal mode. A file created before pushgate set it (or by another program) is
/// rewritten once with `VACUUM`, which needs as much free disk space as the file takes.
pub(crate) async fn prepare_file(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    connection
        .execute("PRAGMA auto_vacuum = INCREMENTAL")
        .await?;
    connection.execute("PRAGMA journal_mode = WAL").await?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut *connection)
        .await?;
    if mode != AUTO_VACUUM_INCREMENTAL {
        tracing::info!(
            "rewriting the SQLite database once (VACUUM) so deleted rows give their space back"
        );
        connection.execute("VACUUM").await?;
        // The rewrite went through the WAL: fold it in and empty it now.
        connection
            .execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
    }
    Ok(())
}
