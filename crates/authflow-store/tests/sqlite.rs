//! The behavioural suite against SQLite: a fresh database file (WAL mode) in a temporary directory per test.
#![cfg(feature = "sqlite")]

use std::path::Path;

use authflow_store::sqlite::SqliteStore;
use authflow_store::{open, ClientStore, OpenOptions};

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

authflow_store::store_suite!(authflow_store::fixtures::sqlite());

use authflow_store::testsuite::bare_client as client;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn open_creates_the_file_in_wal_mode_and_migrations_are_idempotent() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        assert!(!path.exists());
        let store = open(&url(&path), &OpenOptions::default()).await.expect("open sqlite://");
        assert_eq!(store.backend(), "sqlite");
        store.ping().await.expect("ping");
        assert!(path.exists(), "the database file is created");
        store.insert_client(&client("app")).await.expect("insert");
        assert!(dir.path().join("fresh.db-wal").exists(), "the database is in WAL mode");

        // Opening again migrates again: a no-op, and the data is there.
        let again = open(&url(&path), &OpenOptions::default()).await.expect("open again");
        assert!(again.find_client("app").await.unwrap().is_some());
        let direct = SqliteStore::connect(&url(&path), 2).await.unwrap();
        direct.migrate().await.expect("first migrate");
        direct.migrate().await.expect("second migrate");
    });
}

#[test]
fn data_survives_reopening() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = url(&dir.path().join("durable.db"));
        {
            let store = SqliteStore::connect(&url, 2).await.unwrap();
            store.migrate().await.unwrap();
            store.insert_client(&client("durable")).await.unwrap();
            store.close().await;
        }
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        assert_eq!(store.find_client("durable").await.unwrap(), Some(client("durable")));
    });
}

#[test]
fn in_memory_database_is_shared_by_reads_and_writes() {
    block_on(async {
        let store = open("sqlite::memory:", &OpenOptions::default()).await.expect("open sqlite::memory:");
        store.insert_client(&client("mem")).await.unwrap();
        assert!(store.find_client("mem").await.unwrap().is_some(), "a read sees the write");
        // A second in-memory store is a different database.
        let other = open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
        assert!(other.find_client("mem").await.unwrap().is_none());
    });
}

#[test]
fn unmigrated_database_fails_cleanly() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = OpenOptions { migrate: false, ..OpenOptions::default() };
        let store = open(&url(&dir.path().join("empty.db")), &options).await.unwrap();
        let err = store.find_client("x").await.expect_err("no tables yet");
        assert!(matches!(err, authflow_store::StoreError::Unavailable(_)), "{err:?}");
    });
}
