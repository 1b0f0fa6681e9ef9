//! What a SQLite database costs on disk: the write-ahead log stays bounded, repeated
//! registrations write nothing, and deleted messages give their space back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection as _, Executor as _};

use pushgate_core::{
    DeviceHash, MessageStore as _, MessageStoreLimits, NewStoredMessage, Node, OwnerKey,
    PushService, RegistrationRequest, RegistrationStore as _, Secret,
};
use pushgate_store::{SqlStore, StoreConfig};

/// The most the store lets the WAL file take here: its `journal_size_limit` (8 MiB). With
/// one writer at a time and no long reads, it is checkpointed every 1000 pages (about 4 MiB).
const WAL_BOUND: u64 = 8 << 20;

/// A database file in a directory of its own.
struct DbFile {
    dir: tempfile::TempDir,
}

impl DbFile {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("pushgate.db")
    }

    fn wal(&self) -> PathBuf {
        self.dir.path().join("pushgate.db-wal")
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path().display())
    }

    /// A store with maintenance rounds every `interval` (zero: none).
    async fn connect(&self, interval: Duration) -> SqlStore {
        let config = StoreConfig {
            sqlite_maintenance_interval: interval,
            ..StoreConfig::new(self.url())
        };
        SqlStore::connect(&config).await.expect("connect")
    }

    /// Bytes on disk: the database and its WAL.
    fn size(&self) -> u64 {
        file_size(&self.path()) + file_size(&self.wal())
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

fn registration(token: String, now: i64) -> RegistrationRequest {
    RegistrationRequest {
        service: PushService::Fcm,
        device: DeviceHash::compute("alice@example.test", "conversations"),
        domain: "example.test".to_owned(),
        account: pushgate_core::AccountJid::new("alice@example.test"),
        max_devices_per_account: 32,
        token,
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now,
    }
}

/// Conversations registers again on every connect. 10,000 identical registrations write
/// nothing at all (the WAL and the database file are byte for byte as before); 10,000 token
/// changes, with no maintenance round to help, never take the WAL past its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registrations_keep_the_wal_small() {
    let file = DbFile::new();
    let store = file.connect(Duration::ZERO).await;
    // An FCM token is about 160 characters.
    let token = "f".repeat(160);
    let first = store
        .register_device(registration(token.clone(), 1))
        .await
        .unwrap();

    let wal_before = std::fs::read(file.wal()).unwrap();
    let db_before = std::fs::read(file.path()).unwrap();
    for now in 2..10_002 {
        let again = store
            .register_device(registration(token.clone(), now))
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    assert!(
        std::fs::read(file.wal()).unwrap() == wal_before,
        "identical registrations wrote to the WAL"
    );
    assert!(
        std::fs::read(file.path()).unwrap() == db_before,
        "identical registrations changed the database"
    );

    let mut largest = 0;
    for n in 0..10_000 {
        let changed = store
            .register_device(registration(format!("{token}{n}"), 20_000 + n))
            .await
            .unwrap();
        assert_eq!(changed.node, first.node);
        largest = largest.max(file_size(&file.wal()));
        assert!(largest <= WAL_BOUND, "WAL at {largest} bytes after {n}");
    }
    // The changes did go through the WAL (and so were checkpointed along the way).
    assert!(largest > 1 << 20, "WAL peaked at only {largest} bytes");
    store.close().await;
}

fn message(n: u32, body: &[u8]) -> NewStoredMessage {
    let owner = format!("user{}@example.test/phone", n % 200);
    NewStoredMessage {
        owner: OwnerKey::of_jid(&owner),
        endpoint_token: format!("v2.local.{owner}"),
        application: "im.example.app".to_owned(),
        instance: "default".to_owned(),
        topic: None,
        urgency: None,
        body: body.to_vec(),
        received_at: 1_000,
        expires_at: 1_000_000,
    }
}

/// 10,000 messages of 4 KiB (about 50 MB) are stored, then delivered and deleted one by one as a flush
/// does: within a few maintenance rounds the database and its WAL are back to a small
/// fraction of what they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_messages_give_their_space_back() {
    let file = DbFile::new();
    let store = file.connect(Duration::from_millis(200)).await;
    let limits = MessageStoreLimits {
        max_per_owner: 1_000,
        max_total: 100_000,
    };
    let body = vec![0x5a; 4096];
    for n in 0..10_000 {
        store
            .store_message(message(n, &body), limits)
            .await
            .unwrap();
    }
    let full = file.size();
    assert!(full > 40 << 20, "10,000 messages took only {full} bytes");

    let mut after = 0;
    loop {
        let page = store.messages_after(after, 1_000, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for stored in page {
            assert!(store.delete_message(stored.id).await.unwrap());
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while file.size() > full / 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let emptied = file.size();
    assert!(
        emptied <= full / 20,
        "{emptied} bytes left of {full} after deleting everything"
    );
    store.close().await;
}

/// A database file made before the store set `auto_vacuum` (or by another program) is
/// converted once at connect, keeping what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_database_file_is_converted_once() {
    let file = DbFile::new();
    sqlx::any::install_default_drivers();
    let mut raw = AnyConnection::connect(&file.url()).await.unwrap();
    raw.execute("PRAGMA auto_vacuum = NONE; CREATE TABLE leftover (x INTEGER); INSERT INTO leftover VALUES (7);")
        .await
        .unwrap();
    raw.close().await.unwrap();

    let store = file.connect(Duration::ZERO).await;
    let registered = store
        .register_device(registration("t".to_owned(), 1))
        .await
        .unwrap();
    store.close().await;

    let mut raw = AnyConnection::connect(&file.url()).await.unwrap();
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(mode, 2, "auto_vacuum is INCREMENTAL");
    let kept: i64 = sqlx::query_scalar("SELECT x FROM leftover")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(kept, 7);
    raw.close().await.unwrap();

    let again = file.connect(Duration::ZERO).await;
    let found = again
        .find_registration("example.test", registered.node.as_str())
        .await
        .unwrap();
    assert_eq!(found, Some(registered));
    again.close().await;
}
