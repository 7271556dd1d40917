//! The SQLite backend: one file on one machine, the default of `authflow serve`.
//!
//! The database runs in WAL mode, so readers never block the writer nor each other. SQLite admits one
//! writer at a time; rather than let many pooled connections race for the write lock (and fail with
//! `SQLITE_BUSY` under load), every write goes through a pool of exactly **one** connection, where writes
//! queue in the process, and reads go through a separate pool of `max_connections` read-only connections.
//! `busy_timeout` still covers other processes (e.g. `authflow user add` next to a running server).
//!
//! ```no_run
//! # async fn demo() -> Result<(), authflow_store::StoreError> {
//! use authflow_store::sqlite::SqliteStore;
//! let store = SqliteStore::connect("sqlite://authflow.db", 8).await?; // created if missing
//! store.migrate().await?;
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, Transaction};

use crate::lease::{Connections, Lease};
use crate::sql::db_error;
use crate::{StoreError, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Storage in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Read-only connections (`PRAGMA query_only`), `max_connections` of them.
    reader: Arc<Connections<SqliteConnection>>,
    /// The single connection every write goes through.
    writer: Arc<Connections<SqliteConnection>>,
}

impl SqliteStore {
    /// Open (creating it if missing) the database a URL names: `sqlite://authflow.db` (relative),
    /// `sqlite:///var/lib/authflow/authflow.db` (absolute) or `sqlite::memory:` (private to this store,
    /// gone when it is dropped). Reads use up to `max_connections` connections; writes use one.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::unavailable)?
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);

        if url.contains(":memory:") || url.contains("mode=memory") {
            // Each connection to an in-memory database would see its own; one connection serves all, and is
            // never closed, since closing it would drop the data.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options.clone())
                .await
                .map_err(StoreError::unavailable)?;
            let shared = Arc::new(Connections::shared(pool, options));
            return Ok(SqliteStore { reader: shared.clone(), writer: shared });
        }

        // The writer first: it creates the file and switches it to WAL (a persistent setting), which the
        // readers then inherit. Neither goes through sqlx's pool (see `lease`): a statement is then one hop to
        // the connection's worker thread, not two.
        let writer = Arc::new(Connections::new(options.clone().journal_mode(SqliteJournalMode::Wal), 1, BUSY_TIMEOUT));
        let opened = writer.lease().await.and_then(|lease| lease.settle(Ok(())));
        opened.map_err(StoreError::unavailable)?;
        let reader = Arc::new(Connections::new(options.pragma("query_only", "ON"), max_connections, BUSY_TIMEOUT));
        Ok(SqliteStore { reader, writer })
    }

    /// Apply pending schema migrations (idempotent; `migrations/sqlite` in this crate).
    ///
    /// Runs with foreign-key enforcement off on the one writer connection, as SQLite's procedure for
    /// rebuilding a table requires (a rebuild's `DROP TABLE` would otherwise cascade into every table that
    /// references it), then checks every foreign key before switching enforcement back on.
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut db = self.write().await?;
        let conn = db.conn();
        let migrated = async {
            sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await.map_err(StoreError::unavailable)?;
            let ran = MIGRATOR.run(&mut *conn).await.map_err(StoreError::unavailable);
            let dangling = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *conn).await;
            // A connection left with enforcement off is closed by the lease (an `Unavailable` outcome).
            sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await.map_err(StoreError::unavailable)?;
            ran?;
            match dangling.map_err(StoreError::unavailable)?.len() {
                0 => Ok(()),
                n => Err(StoreError::Corrupt(format!("{n} rows reference missing rows after migrating"))),
            }
        }
        .await;
        db.settle(migrated)
    }

    /// Close every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn read(&self) -> StoreResult<Lease<'_, SqliteConnection>> {
        self.reader.lease().await.map_err(db_error("connection"))
    }

    async fn write(&self) -> StoreResult<Lease<'_, SqliteConnection>> {
        self.writer.lease().await.map_err(db_error("connection"))
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front, so a transaction never fails half-way for want of
    /// it (a deferred one could, if another process wrote in between).
    async fn begin(conn: &mut SqliteConnection) -> StoreResult<Transaction<'_, Sqlite>> {
        conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error("transaction"))
    }

    async fn begin_purge(conn: &mut SqliteConnection) -> StoreResult<Transaction<'_, Sqlite>> {
        Self::begin(conn).await
    }
}

crate::sql::impl_sql_store!(SqliteStore, Sqlite, "sqlite");

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(conn: &mut SqliteConnection, name: &str) -> String {
        use sqlx::Row;
        let row = sqlx::query(&format!("PRAGMA {name}")).fetch_one(conn).await.unwrap();
        row.try_get::<String, _>(0).unwrap_or_else(|_| row.get::<i64, _>(0).to_string())
    }

    #[tokio::test]
    async fn connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("pragmas.db").display());
        let store = SqliteStore::connect(&url, 3).await.unwrap();
        store.migrate().await.unwrap();
        let mut writer = store.write().await.unwrap();
        let mut reader = store.read().await.unwrap();
        for conn in [writer.conn(), reader.conn()] {
            assert_eq!(pragma(conn, "journal_mode").await, "wal");
            assert_eq!(pragma(conn, "foreign_keys").await, "1");
            assert_eq!(pragma(conn, "synchronous").await, "1", "NORMAL");
            assert_eq!(pragma(conn, "busy_timeout").await, BUSY_TIMEOUT.as_millis().to_string());
        }
        assert_eq!(pragma(writer.conn(), "query_only").await, "0");
        assert_eq!(pragma(reader.conn(), "query_only").await, "1", "readers cannot write");
        let write =
            sqlx::query("INSERT INTO replay_guard (key, expires_at) VALUES ('k', 1)").execute(reader.conn()).await;
        assert!(write.is_err(), "a write through a reader is refused");
        assert!(reader.settle(write).is_err());
        drop(writer);
        assert_eq!(store.writer.capacity(), 1, "one writer");
        assert_eq!(store.reader.capacity(), 3);
    }
}
