//! Opening stores: migrations, health, and the ways connecting fails.

use std::time::{Duration, Instant};

use pushgate_core::{
    DeviceHash, Node, PushService, RegistrationRequest, RegistrationStore as _,
    RevocationStore as _, Secret, Store, StoreError,
};
use pushgate_store::{Backend, SqlStore, StoreConfig, StoreSetupError};

use crate::support::{TestDb, on_every_backend};

/// Connecting again to a migrated database runs the migrations again without error and keeps
/// the data; the store reports its backend and answers pings until closed.
async fn reconnect_keeps_schema_and_data(db: TestDb) {
    let store = db.connect().await;
    assert_eq!(store.backend(), db.backend);
    store.ping().await.unwrap();
    let device = DeviceHash::compute("a@example.test", "d");
    let request = RegistrationRequest {
        service: PushService::Apns,
        device: device.clone(),
        domain: "example.test".to_owned(),
        account: pushgate_core::AccountJid::new("alice@example.test"),
        max_devices_per_account: 32,
        token: "0123abcd".to_owned(),
        fresh_node: Node::generate(),
        fresh_secret: Secret::generate(),
        now: 5,
    };
    let registration = store.register_device(request).await.unwrap();
    store.close().await;
    let closed = store.ping().await;
    assert!(
        matches!(closed, Err(StoreError::Unavailable(_))),
        "{closed:?}"
    );

    let again = db.connect().await;
    again.ping().await.unwrap();
    let found = again
        .find_registration("example.test", registration.node.as_str())
        .await;
    assert_eq!(found.unwrap(), Some(registration));
    again.close().await;
    let third = db.connect().await;
    assert!(
        third
            .unregister_device(PushService::Apns, &device)
            .await
            .unwrap()
    );
}

on_every_backend! {
    reconnect_keeps_schema_and_data => crate::setup::reconnect_keeps_schema_and_data,
}

#[tokio::test]
async fn unknown_scheme_is_unsupported() {
    for url in [
        "redis://127.0.0.1/0",
        "pushgate.db",
        "mssql://sa:hunter2@127.0.0.1/db",
    ] {
        let error = SqlStore::connect(&StoreConfig::new(url)).await.err();
        assert!(
            matches!(error, Some(StoreSetupError::UnsupportedUrl { .. })),
            "{url}: {error:?}"
        );
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
    }
}

/// A port nothing listens on: bound, then released.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn refused_connection_fails_quickly_without_the_password() {
    for scheme in ["postgres", "mysql"] {
        let port = refused_port();
        let config = StoreConfig {
            acquire_timeout: Duration::from_millis(250),
            ..StoreConfig::new(format!("{scheme}://push:hunter2@127.0.0.1:{port}/push"))
        };
        let started = Instant::now();
        let error = SqlStore::connect(&config).await.err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{scheme} took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(error, Some(StoreSetupError::Connect { .. })),
            "{scheme}: {error:?}"
        );
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("push:***@127.0.0.1"), "{message}");
    }
}

#[tokio::test]
async fn missing_sqlite_file_without_create_mode_fails_to_connect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("absent.db").display());
    let error = SqlStore::connect(&StoreConfig::new(url)).await.err();
    assert!(
        matches!(error, Some(StoreSetupError::Connect { .. })),
        "{error:?}"
    );
}

/// An in-memory database keeps its data across operations (one connection, never recycled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_sqlite_keeps_its_data() {
    let store = SqlStore::connect(&StoreConfig::new("sqlite::memory:"))
        .await
        .expect("connect");
    assert_eq!(store.backend(), Backend::Sqlite);
    let endpoint = pushgate_core::EndpointId::of_token("t");
    store.revoke_endpoint(&endpoint, 100).await.unwrap();
    let checks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let endpoint = endpoint.clone();
            tokio::spawn(async move { store.is_endpoint_revoked(&endpoint, 0).await })
        })
        .collect();
    for check in checks {
        assert!(check.await.expect("task").unwrap());
    }
}

/// A file database runs in WAL mode: the write-ahead log sits next to it while open.
#[tokio::test]
async fn sqlite_file_uses_write_ahead_logging() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pushgate.db");
    let db = TestDb {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        backend: Backend::Sqlite,
    };
    let store = db.connect().await;
    store
        .revoke_endpoint(&pushgate_core::EndpointId::of_token("t"), 100)
        .await
        .unwrap();
    assert!(dir.path().join("pushgate.db-wal").exists());
    store.close().await;
}
