//! Connections: which database a URL names, how each connection is configured, the reader list, retries
//! while another connection holds a lock, and error mapping.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{CachedStatement, Connection, ErrorCode, OpenFlags, ToSql};

use crate::sql::SqliteRow;
use crate::{StoreError, StoreResult};

/// How long an operation keeps retrying while another connection (another process: `authflow user add` next
/// to a running server) holds the lock it needs, before it fails with [`StoreError::Unavailable`].
pub(super) const BUSY_BUDGET: Duration = Duration::from_secs(5);
/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Room for every statement in `sql.rs`, so none is ever prepared twice on one connection.
const STATEMENT_CACHE: usize = 64;

/// The size the WAL file is cut back to after a checkpoint, when a burst of writes grew it beyond that.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;

// ---- what a URL names ------------------------------------------------------------------------------------

/// The database a `sqlite:` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A database private to its one connection, gone when that is closed.
    Memory,
    /// A database file, created if missing.
    File(PathBuf),
}

impl Target {
    /// Parse `sqlite://relative.db`, `sqlite:///abs/path.db`, `sqlite:path.db`, `sqlite::memory:` or
    /// `sqlite://?mode=memory`, with the query parameters sqlx accepted that mean something here: `mode=rwc`
    /// and `mode=rw` (the file is created if missing either way), `mode=memory`, `cache=shared|private`
    /// (moot: an in-memory database has one connection, a file's connections share nothing but the file).
    /// Percent-escapes in the path are decoded (`%3F` for a `?` in a file name).
    pub(super) fn parse(url: &str) -> StoreResult<Target> {
        let invalid = |why: String| StoreError::Unavailable(format!("invalid SQLite URL {url:?}: {why}").into());
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| invalid("expected sqlite://path or sqlite::memory:".into()))?;
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut memory = database == ":memory:";
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (key, value) {
                ("mode", "rwc" | "rw") | ("cache", "shared" | "private") => {}
                ("mode", "memory") => memory = true,
                ("mode", "ro") => {
                    return Err(invalid("read-only databases are not supported: the store writes".into()))
                }
                _ => return Err(invalid(format!("unsupported parameter {pair:?}"))),
            }
        }
        if memory {
            return Ok(Target::Memory);
        }
        if database.is_empty() {
            return Err(invalid("no database file".into()));
        }
        percent_decode(database).map(|path| Target::File(PathBuf::from(path))).map_err(invalid)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
        match (digit(hex[0]), digit(hex[1])) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err(format!("bad percent-escape in {s:?}")),
        }
    }
    String::from_utf8(out).map_err(|_| format!("the path {s:?} is not UTF-8 once decoded"))
}

// ---- opening ---------------------------------------------------------------------------------------------

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The one read-write connection.
    Writer,
    /// A read-only connection (`query_only`).
    Reader,
    /// The background checkpointer's connection.
    Checkpointer,
}

/// Open and configure a connection.
///
/// Readers have `busy_timeout` 0: SQLite's own wait for a lock sleeps the calling thread, which for them is a
/// runtime thread; [`retry`] waits instead, asynchronously. The writer has a thread of its own, where waiting
/// is fine: it waits up to [`BUSY_BUDGET`]. The writer has WAL mode's automatic checkpoints off: one would run
/// inside a commit, before the group's answers; `checkpoint` runs them instead.
pub(super) fn open(target: &Target, role: Role) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match target {
        Target::Memory => Connection::open_in_memory_with_flags(flags)?,
        // Only the writer creates the file; the others open it once the writer has (and set WAL mode).
        Target::File(path) if role == Role::Writer => {
            Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_CREATE)?
        }
        Target::File(path) => Connection::open_with_flags(path, flags)?,
    };
    conn.busy_timeout(if role == Role::Writer { BUSY_BUDGET } else { Duration::ZERO })?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if role == Role::Writer && matches!(target, Target::File(_)) {
        // Persistent: readers (and other processes) inherit it. Readers then never block the writer.
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite refused WAL mode; reads and writes will wait for each other");
        }
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    }
    if role == Role::Reader {
        conn.pragma_update(None, "query_only", true)?;
    }
    // In WAL mode, NORMAL syncs at checkpoints only: a commit survives a crash of the process, and of the
    // machine up to the last checkpoint.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if role == Role::Writer {
        // 8 MiB (SQLite's default is 2 MiB) keeps the pages every write appends to, and the upper levels of the
        // token-hash indexes; a random leaf comes from the OS's page cache. Not more: after every commit that
        // split a page SQLite walks the cache's whole hash table, and with 64 MiB that was a fifth of the
        // writer's time (8 MiB measured 7 % more issuances per second).
        conn.pragma_update(None, "cache_size", -8_192)?;
    }
    Ok(conn)
}

// ---- failures --------------------------------------------------------------------------------------------

/// Why one attempt at an operation failed.
#[derive(Debug)]
pub(super) enum Fail {
    /// SQLite (or rusqlite) said no.
    Sql(rusqlite::Error),
    /// Already a storage error (a row that does not decode, a closed store…).
    Store(StoreError),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Sql(e) => e.fmt(f),
            Fail::Store(e) => e.fmt(f),
        }
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// Another connection holds a lock this attempt needed: worth another try.
    fn is_busy(&self) -> bool {
        matches!(self, Fail::Sql(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
    }

    /// The connection may be broken (an I/O error, a damaged file…) rather than the statement refused: it is
    /// closed, never reused.
    pub(super) fn spoils_connection(&self) -> bool {
        matches!(self, Fail::Sql(rusqlite::Error::SqliteFailure(e, _)) if matches!(
            e.code,
            ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::InternalMalfunction
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ApiMisuse
        ))
    }

    /// The storage error, for an operation on `what`.
    pub(super) fn into_store(self, what: &'static str) -> StoreError {
        match self {
            Fail::Sql(e) => store_error(e, what),
            Fail::Store(e) => e,
        }
    }
}

/// Map a rusqlite error as `sql::db_error` maps sqlx's: unique and primary-key violations are conflicts over
/// `what`; other constraint violations and values that do not decode are [`StoreError::Corrupt`] (a caller
/// bug or a damaged database); everything else, a lock still held after [`retry`] included, is
/// [`StoreError::Unavailable`].
pub(super) fn store_error(e: rusqlite::Error, what: &'static str) -> StoreError {
    use rusqlite::ffi;
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => StoreError::Conflict(what),
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::Corrupt(format!("{what} refers to a missing record: {e}")),
            _ => StoreError::Corrupt(format!("{what} violates a constraint: {e}")),
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(_)
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_)
        | E::InvalidColumnType(..) => StoreError::Corrupt(format!("{what}: {e}")),
        _ => StoreError::unavailable(e),
    }
}

pub(super) fn closed() -> Fail {
    Fail::Store(StoreError::Unavailable("the SQLite store is closed".into()))
}

// ---- retrying --------------------------------------------------------------------------------------------

/// Run `attempt` until it succeeds, fails for any reason but a lock held by another connection, or `budget`
/// has passed; in between, sleep asynchronously (1 ms, doubling up to 50 ms), so no thread waits.
///
/// An attempt that failed changed nothing (a transaction that fails rolls back), so trying again is safe.
pub(super) async fn retry<T, F, Fut>(budget: Duration, mut attempt: F) -> Result<T, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut started = None;
    let mut pause = FIRST_PAUSE;
    loop {
        let fail = match attempt().await {
            Err(fail) if fail.is_busy() => fail,
            done => return done,
        };
        // The clock is read only once an attempt has failed: the first attempt almost always succeeds.
        let left = budget.saturating_sub(started.get_or_insert_with(Instant::now).elapsed());
        if left.is_zero() {
            return Err(fail);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

// ---- statements ------------------------------------------------------------------------------------------

/// Parameter names, in order: the statements in `sql.rs` say `$1`, `$2`… and SQLite numbers such *named*
/// parameters by first appearance (`UPDATE_CLIENT` names `$2` first), so they are bound by name.
const PARAMETERS: [&str; 13] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13"];

/// A cached statement with `args[i]` bound to `$i+1`; every parameter of the statement must be given.
fn prepare<'c>(conn: &'c Connection, statement: &str, args: &[&dyn ToSql]) -> rusqlite::Result<CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(statement)?;
    let expected = stmt.parameter_count();
    if args.len() != expected || expected > PARAMETERS.len() {
        return Err(rusqlite::Error::InvalidParameterCount(args.len(), expected));
    }
    for (name, arg) in PARAMETERS.iter().zip(args) {
        let index = stmt.parameter_index(name)?.ok_or_else(|| rusqlite::Error::InvalidParameterName((*name).into()))?;
        stmt.raw_bind_parameter(index, arg)?;
    }
    Ok(stmt)
}

/// Run a statement that returns no rows; how many rows it changed.
pub(super) fn execute(conn: &Connection, statement: &str, args: &[&dyn ToSql]) -> rusqlite::Result<u64> {
    prepare(conn, statement, args)?.raw_execute().map(|n| n as u64)
}

/// The first row a statement returns, decoded, if any.
pub(super) fn query_opt<T>(
    conn: &Connection,
    statement: &str,
    args: &[&dyn ToSql],
    decode: impl Fn(&SqliteRow<'_, '_>) -> StoreResult<T>,
) -> Result<Option<T>, Fail> {
    let mut stmt = prepare(conn, statement, args)?;
    let mut rows = stmt.raw_query();
    let first = rows.next()?.map(|row| decode(&SqliteRow::new(row))).transpose()?;
    // Run the statement to its end: an `UPDATE … RETURNING` in autocommit mode commits there, and a failure to
    // commit must not pass for success.
    while rows.next()?.is_some() {}
    Ok(first)
}

/// Every row a statement returns, decoded.
pub(super) fn query_all<T>(
    conn: &Connection,
    statement: &str,
    args: &[&dyn ToSql],
    decode: impl Fn(&SqliteRow<'_, '_>) -> StoreResult<T>,
) -> Result<Vec<T>, Fail> {
    let mut stmt = prepare(conn, statement, args)?;
    let mut rows = stmt.raw_query();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(decode(&SqliteRow::new(row))?);
    }
    Ok(all)
}

// ---- the readers -----------------------------------------------------------------------------------------

/// How long a reader goes on reading one snapshot when no commit of this process has happened since it was
/// taken: how late a commit of another process (`authflow client add` next to a running server) can be seen.
///
/// Starting a read transaction costs more than the point read it is for: a lock on the WAL's read mark (a
/// `fcntl`) and a look at the WAL's index, then the same again to end it. Kept for up to a millisecond, one
/// snapshot serves dozens of reads under load (a token lookup took 2.8 µs instead of 5.3 µs in criterion).
pub(super) const SNAPSHOT_AGE: Duration = Duration::from_millis(1);

/// The id of the next reader opened, in any store of the process.
static NEXT_READER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The id of the reader this thread used last, in whichever store (a thread that alternates between two
    /// stores keeps neither's).
    static LAST_READER: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// A read-only connection, and the snapshot it has been reading since a time, if any.
#[derive(Debug)]
struct Reader {
    /// Unique in the process: a thread takes back the reader it used last, if idle.
    id: u64,
    conn: Connection,
    /// The count of commits when the snapshot was taken, and when.
    snapshot: Option<(u64, Instant)>,
}

impl Reader {
    /// End the read transaction, so that the next read takes a new snapshot.
    fn end_snapshot(&mut self) -> Result<(), Fail> {
        self.snapshot = None;
        if !self.conn.is_autocommit() {
            self.conn.prepare_cached("ROLLBACK")?.raw_execute()?;
        }
        Ok(())
    }
}

/// Read-only connections to a database file, opened on demand: each call takes an idle one, preferably the
/// one its thread used last (or opens one), runs synchronously on it, and puts it back. The mutex is held
/// for the take and the push only.
///
/// A reader keeps its read transaction open between calls, and so reads the snapshot it last took, until
/// the writer of this process commits (it calls [`Readers::committed`]) or the snapshot is
/// [`SNAPSHOT_AGE`] old. A write is answered after that call, so whoever waited for a write then reads it.
/// A snapshot pins the WAL's frames after the ones it reads, which a checkpoint then cannot copy: a reader
/// goes back idle without its snapshot when a commit made it stale during the call, and checkpoints end the
/// idle readers' snapshots ([`Readers::end_snapshots`]).
#[derive(Debug)]
pub(super) struct Readers {
    target: Target,
    idle: Mutex<Vec<Reader>>,
    max_idle: usize,
    closed: AtomicBool,
    /// How many times the writer has committed (or tried to).
    commits: AtomicU64,
    snapshot_age: Duration,
}

impl Readers {
    pub(super) fn new(target: Target, max_idle: u32) -> Self {
        Self::with_snapshot_age(target, max_idle, SNAPSHOT_AGE)
    }

    pub(super) fn with_snapshot_age(target: Target, max_idle: u32, snapshot_age: Duration) -> Self {
        Readers {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1) as usize,
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            snapshot_age,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Reader>> {
        // The list stays consistent whatever panicked while holding the lock (a push or a pop).
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `op` on a reader, synchronously, in a snapshot no older than the writer's last commit.
    pub(super) fn call<T>(&self, op: impl FnOnce(&Connection) -> Result<T, Fail>) -> Result<T, Fail> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let idle = self.take_idle();
        let mut reader = match idle {
            Some(reader) => reader,
            None => Reader {
                id: NEXT_READER.fetch_add(1, Ordering::Relaxed),
                conn: open(&self.target, Role::Reader)?,
                snapshot: None,
            },
        };
        LAST_READER.set(reader.id);
        // Read before the snapshot is taken: every commit it counts is then in the snapshot.
        let commits = self.commits.load(Ordering::Acquire);
        let result = self.in_snapshot(&mut reader, commits, op);
        if matches!(&result, Err(fail) if fail.spoils_connection()) {
            return result;
        }
        // Whatever failed, the next call starts afresh (a `BUSY` may leave the transaction open). A snapshot
        // that a commit made stale meanwhile is not kept either: idle, it would pin the WAL's frames.
        let stale = result.is_err() || self.commits.load(Ordering::Acquire) != commits;
        if stale && reader.end_snapshot().is_err() {
            return result;
        }
        self.put_back(reader);
        result
    }

    fn in_snapshot<T>(
        &self,
        reader: &mut Reader,
        commits: u64,
        op: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let now = Instant::now();
        let fresh = |&(counted, taken): &(u64, Instant)| counted == commits && now - taken < self.snapshot_age;
        if !reader.snapshot.as_ref().is_some_and(fresh) {
            reader.end_snapshot()?;
            // Deferred: the snapshot is taken by the first read.
            reader.conn.prepare_cached("BEGIN")?.raw_execute()?;
            reader.snapshot = Some((commits, now));
        }
        op(&reader.conn)
    }

    /// An idle reader: the one this thread used last if it is idle, else the one that went idle last. A
    /// connection's memory then stays in one core's caches instead of moving with each call to whichever
    /// thread came next: 4 % more introspections per second on SQLite (four interleaved pairs).
    fn take_idle(&self) -> Option<Reader> {
        let last = LAST_READER.get();
        let mut idle = self.idle();
        match idle.iter().rposition(|reader| reader.id == last) {
            // `remove`, not `swap_remove`: the others keep their order, the last idle one stays last.
            Some(mine) => Some(idle.remove(mine)),
            None => idle.pop(),
        }
    }

    fn put_back(&self, reader: Reader) {
        let surplus = {
            let mut idle = self.idle();
            if idle.len() < self.max_idle && !self.closed.load(Ordering::Acquire) {
                idle.push(reader);
                None
            } else {
                Some(reader)
            }
        };
        // Closed outside the lock.
        drop(surplus);
    }

    /// The writer has committed, or may have: later calls read a new snapshot.
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Release);
    }

    /// End the snapshots of the idle readers, so that a checkpoint can copy every frame and the WAL can start
    /// over. (A reader in use ends its own as it goes back idle, if a commit made it stale meanwhile.)
    pub(super) fn end_snapshots(&self) {
        let mut idle = self.idle();
        // A reader that cannot end its transaction is closed.
        idle.retain_mut(|reader| reader.end_snapshot().is_ok());
    }

    /// Refuse every later call; the idle connections, to be closed by the caller.
    pub(super) fn close(&self) -> Vec<Connection> {
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *self.idle()).into_iter().map(|reader| reader.conn).collect()
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let file = |p: &str| Some(Target::File(PathBuf::from(p)));
        assert_eq!(Target::parse("sqlite://authflow.db").ok(), file("authflow.db"));
        assert_eq!(Target::parse("sqlite:///var/lib/a.db").ok(), file("/var/lib/a.db"));
        assert_eq!(Target::parse("sqlite:a.db?mode=rwc").ok(), file("a.db"));
        assert_eq!(Target::parse("sqlite://a%3Fb.db").ok(), file("a?b.db"));
        assert_eq!(Target::parse("sqlite::memory:").ok(), Some(Target::Memory));
        assert_eq!(Target::parse("sqlite://?mode=memory&cache=shared").ok(), Some(Target::Memory));
        assert_eq!(Target::parse("sqlite://x.db?mode=memory").ok(), Some(Target::Memory));
        for bad in ["postgres://x", "sqlite://", "sqlite://a.db?mode=ro", "sqlite://a.db?journal=x", "sqlite://a%zz"] {
            assert!(matches!(Target::parse(bad), Err(StoreError::Unavailable(_))), "{bad}");
        }
    }

    #[test]
    fn parameters_are_bound_by_name() {
        let conn = open(&Target::Memory, Role::Writer).unwrap();
        // `$2` comes first: positional binding would swap the values.
        let row = query_opt(&conn, "SELECT $2 AS b, $1 AS a", &[&"one", &"two"], |r| {
            Ok((r.get::<_, String>("a").unwrap(), r.get::<_, String>("b").unwrap()))
        });
        assert_eq!(row.unwrap(), Some(("one".into(), "two".into())));
        let missing = execute(&conn, "SELECT $1, $2", &[&1]);
        assert!(matches!(missing, Err(rusqlite::Error::InvalidParameterCount(1, 2))), "{missing:?}");
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        use crate::sql::Columns;
        let conn = open(&Target::Memory, Role::Writer).unwrap();
        let statement = "SELECT 1 AS a, 2 AS b, 3 AS c";
        let in_order = query_opt(&conn, statement, &[], |r| Ok([r.int("a")?, r.int("b")?, r.int("c")?]));
        assert_eq!(in_order.unwrap(), Some([1, 2, 3]));
        let shuffled = query_opt(&conn, statement, &[], |r| Ok([r.int("c")?, r.int("a")?, r.int("C")?, r.int("b")?]));
        assert_eq!(shuffled.unwrap(), Some([3, 1, 3, 2]));
        let unknown = query_opt(&conn, statement, &[], |r| r.int("d")).unwrap_err();
        assert!(matches!(unknown, Fail::Store(StoreError::Corrupt(_))), "{unknown:?}");
    }

    #[test]
    fn columns_parsed_in_place_decode_and_refuse_what_does_not_fit() {
        use crate::sql::Columns;
        let conn = open(&Target::Memory, Role::Writer).unwrap();
        let statement = "SELECT zeroblob(32) AS h, x'0102' AS short, NULL AS missing, 'a b' AS s, \
                         '[\"https://r\"]' AS r, '[1]' AS bad_r, 7 AS n";
        type Decode<'a> = &'a dyn Fn(&SqliteRow<'_, '_>) -> StoreResult<()>;
        let row = |decode: Decode<'_>| query_opt(&conn, statement, &[], |r| Ok(decode(r))).unwrap().unwrap();
        row(&|r| {
            assert_eq!(r.hash("h")?.as_bytes(), &[0u8; 32]);
            assert_eq!(r.opt_hash("missing")?, None);
            assert_eq!(r.scope("s")?.map(|s| s.to_string()).as_deref(), Some("a b"));
            assert_eq!(r.scope("missing")?, None);
            assert_eq!(r.resources("r")?, ["https://r"]);
            Ok(())
        })
        .unwrap();
        let corrupt: [(&str, Decode<'_>); 6] = [
            ("a hash of 2 bytes", &|r| r.hash("short").map(drop)),
            ("a required hash that is NULL", &|r| r.hash("missing").map(drop)),
            ("a hash that is text", &|r| r.hash("s").map(drop)),
            ("resources that are NULL", &|r| r.resources("missing").map(drop)),
            ("resources that are not strings", &|r| r.resources("bad_r").map(drop)),
            ("a scope that is a number", &|r| r.scope("n").map(drop)),
        ];
        for (what, decode) in corrupt {
            assert!(matches!(row(decode), Err(StoreError::Corrupt(_))), "{what}");
        }
    }

    #[test]
    fn errors_are_mapped() {
        let conn = open(&Target::Memory, Role::Writer).unwrap();
        conn.execute_batch(
            "CREATE TABLE p (id TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n > 0)) STRICT;
             CREATE TABLE c (p TEXT NOT NULL REFERENCES p (id)) STRICT;
             INSERT INTO p VALUES ('a', 1);",
        )
        .unwrap();
        let map = |statement: &str| store_error(execute(&conn, statement, &[]).unwrap_err(), "thing");
        assert!(matches!(map("INSERT INTO p VALUES ('a', 2)"), StoreError::Conflict("thing")));
        assert!(matches!(map("INSERT INTO c VALUES ('zz')"), StoreError::Corrupt(_)), "foreign key");
        assert!(matches!(map("INSERT INTO p VALUES ('b', 0)"), StoreError::Corrupt(_)), "check");
        assert!(matches!(map("INSERT INTO p VALUES ('b', NULL)"), StoreError::Corrupt(_)), "not null");
        assert!(matches!(map("INSERT INTO p VALUES ('b', 'x')"), StoreError::Corrupt(_)), "strict type");
        assert!(matches!(map("SELECT * FROM nowhere"), StoreError::Unavailable(_)));
        let decoded = query_opt(&conn, "SELECT id FROM p", &[], |r| Ok(r.get::<_, i64>(0)));
        let wrong_type = decoded.unwrap().unwrap().unwrap_err();
        assert!(matches!(store_error(wrong_type, "thing"), StoreError::Corrupt(_)));
    }
}
