//! The caching store over a real database: what it answers from memory, for how long, and how
//! every write made through it is seen at once. A second store on the same database plays
//! another instance sharing it; a clock moved by hand plays time.

mod registrations;
mod revocations;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use pushgate_core::clock::FixedClock;
use pushgate_store::{CacheConfig, CachingStore, SqlStore};

use crate::support::TestDb;

/// How long the tests' answers are trusted.
pub const TTL_MS: i64 = 60_000;

/// A store with a cache in front, the clock that times it, and another instance on the same
/// database.
pub struct Instances {
    pub cached: CachingStore<SqlStore>,
    pub clock: Arc<FixedClock>,
    pub other: SqlStore,
}

/// Two instances on `db`, the first caching up to `max_entries` answers of each kind.
pub async fn instances(db: &TestDb, max_entries: usize) -> Instances {
    let clock = Arc::new(FixedClock::new(1_700_000_000_000));
    let config = CacheConfig {
        max_entries,
        ttl: Duration::from_millis(TTL_MS as u64),
    };
    Instances {
        cached: CachingStore::with_clock(db.connect().await, config, clock.clone()),
        clock,
        other: db.connect().await,
    }
}
