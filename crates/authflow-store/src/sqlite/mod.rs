//! The SQLite backend: one file on one machine, the default of `authflow serve`.
//!
//! Statements run **inline**, on the calling task's thread, through rusqlite: a point read or a small write
//! transaction on SQLite in WAL mode with `synchronous = NORMAL` costs a few microseconds of CPU, less than
//! handing it to another thread and being woken up again (what a driver with a worker thread per connection
//! does for every statement).
//!
//! - **Writes** go to one thread with the one read-write connection (`writer`), which runs the writes that
//!   arrive together in one transaction, each under a savepoint of its own (group commit): writes queue in
//!   the process instead of racing for SQLite's write lock, a write that fails rolls back alone, and under
//!   load one commit serves many writes. A write is answered after its commit.
//! - **Reads** take a read-only connection (`PRAGMA query_only`) from an idle list for one synchronous call;
//!   WAL mode lets them run beside the writer and each other. A reader keeps its read transaction, and so its
//!   snapshot, across calls until the writer commits or for 1 ms at most: starting one cost more than the
//!   point read it served. A commit of another process is thus read up to 1 ms late.
//! - **Locks held by another process** (e.g. `authflow user add` next to a running server): the writer's
//!   thread waits for them (up to 5 s); readers, on the runtime's threads, have SQLite's `busy_timeout` at 0
//!   and retry after asynchronous pauses instead, for up to 5 s, then fail with [`StoreError::Unavailable`].
//! - **Checkpoints** (copying the WAL back into the database file, with an fsync) would otherwise run inside
//!   some commit; a background thread runs them four times a second instead, and once the WAL reaches 32 MiB
//!   the writer's thread copies what writes added meanwhile, between two groups, so that the WAL starts over.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authflow_store::StoreError> {
//! use authflow_store::sqlite::SqliteStore;
//! let store = SqliteStore::connect("sqlite://authflow.db", 8).await?; // created if missing
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod checkpoint;
mod conn;
mod migrate;
mod spin;
mod store;
mod writer;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use self::checkpoint::{Checkpointer, Tail, CHECKPOINT_EVERY, TAIL_FRAMES};
use self::conn::{open, retry, Fail, Readers, Role, Target, BUSY_BUDGET};
use self::writer::Writer;
use crate::{StoreError, StoreResult};

/// Storage in a SQLite database file (or in memory).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// How long a read retries while another connection holds the lock it needs, and a write waits for the
    /// writer.
    busy_budget: Duration,
}

struct Inner {
    target: Target,
    /// The thread every write goes through; for an in-memory database, its connection serves the reads too.
    writer: Writer,
    /// Read-only connections to the file (none in memory, where only the writer's connection sees the data).
    readers: Option<Arc<Readers>>,
    /// For a file; taken by [`SqliteStore::close`], else stopped when the last clone of the store is dropped.
    checkpointer: Mutex<Option<Checkpointer>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("database", &self.inner.target).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating it if missing) the database a URL names: `sqlite://authflow.db` (relative),
    /// `sqlite:///var/lib/authflow/authflow.db` (absolute) or `sqlite::memory:` (private to this store,
    /// gone when it is dropped). Up to `max_connections` read-only connections are kept open; writes use one.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let target = Target::parse(url)?;
        // The writer first: it creates the file and switches it to WAL mode (persistent), which the other
        // connections then find. Creating a file and changing its journal mode write and sync: off the
        // runtime's threads.
        let writer = retry(BUSY_BUDGET, || {
            let target = target.clone();
            async move { blocking(move || open(&target, Role::Writer).map_err(Fail::from)).await }
        })
        .await
        .map_err(|fail| fail.into_store("connection"))?;
        let (readers, checkpointer, tail) = match &target {
            Target::Memory => (None, None, Tail::default()),
            Target::File(_) => {
                let readers = Arc::new(Readers::new(target.clone(), max_connections));
                let started = {
                    let (target, readers) = (target.clone(), readers.clone());
                    blocking(move || {
                        Checkpointer::start(&target, CHECKPOINT_EVERY, TAIL_FRAMES, Some(readers)).map_err(Fail::from)
                    })
                    .await
                };
                let (checkpointer, tail) = started.map_err(|fail| fail.into_store("connection"))?;
                (Some(readers), Some(checkpointer), tail)
            }
        };
        let inner = Inner {
            writer: Writer::start(target.clone(), writer, tail, readers.clone())?,
            target,
            readers,
            checkpointer: Mutex::new(checkpointer),
        };
        Ok(SqliteStore { inner: Arc::new(inner), busy_budget: BUSY_BUDGET })
    }

    /// Apply pending schema migrations (idempotent; `migrations/sqlite` in this crate).
    ///
    /// Runs with foreign-key enforcement off on the writer, as SQLite's procedure for rebuilding a table
    /// requires, then checks every foreign key before switching enforcement back on. Databases migrated by
    /// earlier versions (with sqlx, which kept its history in `_sqlx_migrations`) are recognised.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.inner.writer.alone(migrate::run).await.map_err(|fail| fail.into_store("migration"))
    }

    /// Close every connection (a last checkpoint first) and stop the checkpointer; later calls fail with
    /// [`StoreError::Unavailable`]. A call in progress finishes first.
    pub async fn close(&self) {
        let writer = self.inner.writer.close();
        let readers = self.inner.readers.as_deref().map(Readers::close).unwrap_or_default();
        let checkpointer = self.inner.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The writer ends after the writes queued before; the last connection to close checkpoints the WAL
        // (and syncs): off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            drop(readers);
            if let Some(checkpointer) = checkpointer {
                checkpointer.stop();
            }
        })
        .await;
    }

    /// Run `op` on a reader, inline; on the writer's connection for an in-memory database.
    async fn read<T>(&self, what: &'static str, op: impl Fn(&Connection) -> Result<T, Fail> + Sync) -> StoreResult<T> {
        let result = match &self.inner.readers {
            Some(readers) => {
                let op = &op;
                retry(self.busy_budget, move || async move { readers.call(op) }).await
            }
            None => self.inner.writer.inline(|conn| op(conn)),
        };
        result.map_err(|fail| fail.into_store(what))
    }

    /// Run `op` in the writer's next group transaction (see `writer`); answered once committed.
    async fn write<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl Fn(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> StoreResult<T> {
        self.inner.writer.write(self.busy_budget, op).await.map_err(|fail| fail.into_store(what))
    }
}

/// `op` on Tokio's blocking threads.
async fn blocking<T: Send + 'static>(op: impl FnOnce() -> Result<T, Fail> + Send + 'static) -> Result<T, Fail> {
    tokio::task::spawn_blocking(op).await.map_err(|e| Fail::Store(StoreError::unavailable(e)))?
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::checkpoint::{checkpoint, Copied};
    use super::conn::SNAPSHOT_AGE;
    use super::*;
    use crate::{ClientOrigin, ClientStore};

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            let value = row.get_ref(0)?;
            Ok(value.as_str().map(str::to_owned).or_else(|_| value.as_i64().map(|n| n.to_string())).unwrap())
        })
        .unwrap()
    }

    async fn file_store(dir: &tempfile::TempDir) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = SqliteStore::connect(&url, 3).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    use crate::testsuite::bare_client as client;

    #[tokio::test]
    async fn connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let readers = store.inner.readers.as_ref().unwrap();
        store
            .inner
            .writer
            .inline(|writer| {
                readers.call(|reader| {
                    for conn in [&*writer, reader] {
                        assert_eq!(pragma(conn, "journal_mode"), "wal");
                        assert_eq!(pragma(conn, "foreign_keys"), "1");
                        assert_eq!(pragma(conn, "synchronous"), "1", "NORMAL");
                    }
                    assert_eq!(pragma(reader, "busy_timeout"), "0", "readers wait by asynchronous retries");
                    assert_eq!(pragma(writer, "busy_timeout"), "5000", "the writer's thread may wait");
                    assert_eq!(pragma(writer, "query_only"), "0");
                    assert_eq!(pragma(writer, "wal_autocheckpoint"), "0", "checkpoints run in the background");
                    assert_eq!(pragma(reader, "query_only"), "1", "readers cannot write");
                    let write = reader.execute("INSERT INTO replay_guard (key, expires_at) VALUES ('k', 1)", []);
                    let refused = write.expect_err("a write through a reader is refused");
                    assert!(matches!(refused.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly)), "{refused}");
                    Ok(())
                })
            })
            .unwrap();
        assert_eq!(readers.idle_count(), 1, "a reader whose statement was refused is kept");
    }

    #[tokio::test]
    async fn readers_are_reused_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let readers = store.inner.readers.as_ref().unwrap();
        store.find_client("x").await.unwrap();
        store.find_client("x").await.unwrap();
        assert_eq!(readers.idle_count(), 1, "one call at a time needs one connection");
        // Five calls at once (nested) open five connections; three are kept.
        fn nest(readers: &Readers, depth: usize) {
            if depth > 0 {
                readers
                    .call(|_| {
                        nest(readers, depth - 1);
                        Ok(())
                    })
                    .unwrap();
            }
        }
        nest(readers, 5);
        assert_eq!(readers.idle_count(), 3, "at most max_connections idle");
    }

    #[tokio::test]
    async fn a_thread_takes_back_the_reader_it_used_last() {
        let dir = tempfile::tempdir().unwrap();
        let (_target, readers, _writer) = snapshot_parts(&dir, SNAPSHOT_AGE);
        // Readers are told apart by a cache size of their own (a setting of the connection).
        let mark = |conn: &Connection, size: i64| Ok(conn.pragma_update(None, "cache_size", size)?);
        let marked = |conn: &Connection| Ok(conn.query_row("PRAGMA cache_size", [], |row| row.get::<_, i64>(0))?);
        let both_held = std::sync::Barrier::new(2);
        let (first_back, first_is_back) = std::sync::mpsc::channel();
        let (second_back, second_is_back) = std::sync::mpsc::channel();
        let (readers, both_held) = (&*readers, &both_held);
        std::thread::scope(|threads| {
            let first = threads.spawn(move || {
                readers
                    .call(|conn| {
                        mark(conn, -1001)?;
                        both_held.wait();
                        Ok(())
                    })
                    .unwrap();
                first_back.send(()).unwrap();
                second_is_back.recv().unwrap();
                // The second thread's reader went idle last: a plain stack would hand that one out.
                readers.call(marked).unwrap()
            });
            readers
                .call(|conn| {
                    both_held.wait();
                    first_is_back.recv().unwrap();
                    mark(conn, -1002)
                })
                .unwrap();
            second_back.send(()).unwrap();
            assert_eq!(first.join().unwrap(), -1001, "the first thread's own reader");
        });
        assert_eq!(readers.call(marked).unwrap(), -1002, "this thread's own reader");
        let elsewhere = std::thread::scope(|threads| threads.spawn(|| readers.call(marked).unwrap()).join().unwrap());
        assert!([-1001, -1002].contains(&elsewhere), "a new thread takes an idle reader: {elsewhere}");
        assert_eq!(readers.idle_count(), 2, "and opens none");
    }

    /// A writer and readers of a file with a table `t`, the readers keeping a snapshot for `snapshot_age`.
    fn snapshot_parts(dir: &tempfile::TempDir, snapshot_age: Duration) -> (Target, Arc<Readers>, Writer) {
        let target = Target::File(dir.path().join("snapshots.db"));
        let conn = open(&target, Role::Writer).unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)").unwrap();
        let readers = Arc::new(Readers::with_snapshot_age(target.clone(), 4, snapshot_age));
        let writer = Writer::start(target.clone(), conn, Tail::default(), Some(readers.clone())).unwrap();
        (target, readers, writer)
    }

    fn count_rows(conn: &Connection) -> Result<i64, Fail> {
        Ok(conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?)
    }

    async fn insert_row(writer: &Writer, k: i64) {
        let insert = move |conn: &mut Connection| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, zeroblob(200))", [k])?;
            Ok(())
        };
        writer.write(BUSY_BUDGET, insert).await.unwrap();
    }

    /// Another process's connection to the same file.
    fn other_process_inserts(target: &Target, k: i64) {
        let Target::File(path) = target else { unreachable!() };
        Connection::open(path).unwrap().execute("INSERT INTO t (k, v) VALUES (?1, x'00')", [k]).unwrap();
    }

    #[tokio::test]
    async fn readers_keep_a_snapshot_until_this_process_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (target, readers, writer) = snapshot_parts(&dir, Duration::from_secs(3600));
        assert_eq!(readers.call(count_rows).unwrap(), 0);
        insert_row(&writer, 1).await;
        assert_eq!(readers.call(count_rows).unwrap(), 1, "a write is read as soon as it is answered");
        other_process_inserts(&target, 2);
        assert_eq!(readers.call(count_rows).unwrap(), 1, "the reader went on reading its snapshot");
        insert_row(&writer, 3).await;
        assert_eq!(readers.call(count_rows).unwrap(), 3, "this process's commit ended the snapshot");
    }

    #[tokio::test]
    async fn another_process_s_commits_are_read_once_the_snapshot_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let (target, readers, _writer) = snapshot_parts(&dir, SNAPSHOT_AGE);
        assert_eq!(readers.call(count_rows).unwrap(), 0);
        other_process_inserts(&target, 1);
        std::thread::sleep(SNAPSHOT_AGE * 2);
        assert_eq!(readers.call(count_rows).unwrap(), 1);
    }

    #[tokio::test]
    async fn a_failed_read_ends_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (target, readers, _writer) = snapshot_parts(&dir, Duration::from_secs(3600));
        assert_eq!(readers.call(count_rows).unwrap(), 0);
        other_process_inserts(&target, 1);
        let failed = readers.call(|conn| Ok(conn.execute("SELECT * FROM nowhere", [])?));
        assert!(failed.is_err());
        assert_eq!(readers.call(count_rows).unwrap(), 1, "the next call took a new snapshot");
    }

    /// An idle reader's snapshot pins the WAL's frames from the one it read on, until it is ended.
    #[tokio::test]
    async fn ending_the_idle_snapshots_lets_a_checkpoint_copy_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (target, readers, writer) = snapshot_parts(&dir, Duration::from_secs(3600));
        insert_row(&writer, 0).await;
        assert_eq!(readers.call(count_rows).unwrap(), 1);
        for k in 1..20 {
            insert_row(&writer, k).await;
        }
        let checkpointer = open(&target, Role::Checkpointer).unwrap();
        let Copied { frames, copied } = checkpoint(&checkpointer).unwrap();
        assert!(copied < frames, "the snapshot pins frames: {copied} of {frames} copied");
        readers.end_snapshots();
        let Copied { frames, copied } = checkpoint(&checkpointer).unwrap();
        assert_eq!(copied, frames, "every frame copied");
    }

    /// Another connection — as another process would — takes the write lock and holds it until told.
    fn hold_write_lock(dir: &tempfile::TempDir) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let path = dir.path().join("test.db");
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut other = Connection::open(path).unwrap();
            let tx = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            tx.execute("INSERT INTO replay_guard (key, expires_at) VALUES ('other', 1)", []).unwrap();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
            // Held a little longer, so the waiting write retries a few more times.
            std::thread::sleep(Duration::from_millis(200));
            tx.commit().unwrap();
        });
        held_rx.recv().unwrap();
        (release_tx, thread)
    }

    /// On a single-threaded runtime: were the waiting write to block its thread, nothing else could run.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_waits_for_another_process_without_blocking_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let (release, holder) = hold_write_lock(&dir);

        let write = tokio::spawn({
            let store = store.clone();
            async move { store.insert_client(&client("patient")).await }
        });
        // Meanwhile other tasks run, reads included (WAL: they do not wait for the writer).
        let other = tokio::spawn({
            let store = store.clone();
            async move { store.find_client("patient").await }
        });
        assert_eq!(other.await.unwrap().unwrap(), None, "a read ran while the write waited");
        assert!(!write.is_finished(), "the write waits for the lock");

        release.send(()).unwrap();
        write.await.unwrap().expect("the write succeeds once the lock is free");
        holder.join().unwrap();
        assert!(store.find_client("patient").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_lock_held_past_the_budget_makes_the_store_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = file_store(&dir).await;
        store.busy_budget = Duration::from_millis(30);
        let (release, holder) = hold_write_lock(&dir);
        let err = store.insert_client(&client("impatient")).await.expect_err("the lock is never free in time");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        release.send(()).unwrap();
        holder.join().unwrap();
        // SQLite's busy handler sleeps up to 100 ms between its looks at the lock: a real budget from here.
        store.busy_budget = BUSY_BUDGET;
        // The write that gave up waiting was dropped, not run late: the same client can be added.
        store.insert_client(&client("impatient")).await.expect("the writer is fine afterwards");
    }

    #[tokio::test]
    async fn writes_queue_for_the_writer_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = file_store(&dir).await;
        store.busy_budget = Duration::from_millis(30);
        // A write that keeps the writer's thread busy until released.
        let (release, released) = mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let busy = tokio::spawn({
            let store = store.clone();
            async move {
                let started = std::sync::Mutex::new(Some(started));
                let hold = move |_: &mut Connection| {
                    if let Some(started) = started.lock().unwrap().take() {
                        let _ = started.send(());
                    }
                    // Released by a message or by the sender's drop alike.
                    let _ = released.recv();
                    Ok(())
                };
                store.inner.writer.write(Duration::from_secs(30), hold).await
            }
        });
        running.await.unwrap();
        let err = store.insert_client(&client("queued")).await.expect_err("the writer is never free in time");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert_eq!(store.find_client("queued").await.unwrap(), None, "reads do not queue for the writer");
        drop(release);
        busy.await.unwrap().unwrap();
        // The write that gave up waiting was dropped, not run late: the same client can be added.
        store.insert_client(&client("queued")).await.expect("the writer is free again");
    }

    #[tokio::test]
    async fn closing_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        store.insert_client(&client("a")).await.unwrap();
        store.close().await;
        assert!(matches!(store.find_client("a").await, Err(StoreError::Unavailable(_))));
        assert!(matches!(store.insert_client(&client("b")).await, Err(StoreError::Unavailable(_))));
        assert!(!dir.path().join("test.db-wal").exists(), "the last connection closed checkpoints the WAL away");
    }

    /// A database made by the sqlx-based store, migrated up to version 2, then migrated here.
    #[tokio::test]
    async fn a_database_migrated_by_sqlx_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
                 checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
            )
            .unwrap();
            for m in &migrate::MIGRATIONS[..2] {
                conn.execute_batch(m.sql).unwrap();
                conn.execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (?1, ?2, TRUE, x'00', 1)",
                    rusqlite::params![m.version, m.description],
                )
                .unwrap();
            }
            let metadata = serde_json::to_string(&client("old").metadata).unwrap();
            conn.execute(
                "INSERT INTO clients (id, metadata, origin, created_at) VALUES ('old', ?1, 'admin', 1)",
                [metadata],
            )
            .unwrap();
        }
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()), 2).await.unwrap();
        store.migrate().await.expect("migrate");
        store.migrate().await.expect("migrate again");
        let history = store
            .read("migration", |conn| {
                let mut stmt = conn.prepare("SELECT version FROM authflow_migrations ORDER BY version")?;
                let versions = stmt.query_map([], |r| r.get::<_, i64>(0))?;
                Ok(versions.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .unwrap();
        assert_eq!(history, (1..=6).collect::<Vec<_>>(), "each migration recorded exactly once");
        // 0003 ran (clients from metadata documents), 0001 did not run again (the client is still there).
        let mut new = client("https://app.example/client.json");
        new.origin = ClientOrigin::MetadataDocument;
        store.insert_client(&new).await.expect("0003 applied");
        assert!(store.find_client("old").await.unwrap().is_some(), "data kept");
    }
}
