//! The writer: a thread of its own with the one read-write connection, running the writes in **groups** that
//! share one transaction (group commit).
//!
//! Writes queue in the process instead of racing for SQLite's write lock. The thread takes every write
//! waiting (up to [`MAX_GROUP`]), runs them one after another inside one `BEGIN IMMEDIATE … COMMIT`, and
//! answers them once the commit is done. A write that fails must roll back alone: the group is then rolled
//! back and run again with a savepoint per write (writes are closures that can run twice). Savepoints only
//! on that path, because one per write in every group cost ~15 % of the writer's time, writing each changed
//! page's old content to a sub-journal.
//!
//! Idle, a write waits for nobody; under load one commit, with the WAL frames of every page the group's
//! writes touched, serves the whole group, where one commit per write rewrote the same index pages again
//! and again. A thread rather than a lock on the runtime: it may block (SQLite's `busy_timeout`,
//! while another process writes), and a lock handed from task to task idles until the next task is
//! scheduled.
//!
//! Waiting for the next write, the thread spins a while before it sleeps, while writes come close together
//! (`spin`).
//!
//! Between two groups, the thread also copies the tail of the WAL that a background checkpoint left behind
//! (`checkpoint`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::{checkpoint, Tail};
use super::conn::{closed, open, Fail, Readers, Role, Target};
use super::spin::Spin;
use crate::{StoreError, StoreResult};

/// The most writes one transaction takes.
pub(super) const MAX_GROUP: usize = 64;

/// A write waiting for the thread.
trait Pending: Send {
    /// The caller stopped waiting (cancelled, timed out): not run at all.
    fn abandoned(&self) -> bool;
    /// Run it on the connection; again if its group is run again, the last result standing.
    fn run(&mut self, conn: &mut Connection) -> Ran;
    /// Answer the caller: its own failure, or its success once `committed` says the group's commit held.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
}

/// How a write went.
#[derive(Debug, PartialEq, Eq)]
enum Ran {
    Done,
    Failed,
    /// Failed in a way that leaves the connection suspect (an I/O error…): the group is given up.
    Spoiled,
}

struct Call<T, F> {
    op: F,
    result: Option<Result<T, Fail>>,
    reply: oneshot::Sender<Result<T, Fail>>,
}

impl<T, F> Pending for Call<T, F>
where
    T: Send,
    F: Fn(&mut Connection) -> Result<T, Fail> + Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(&mut self, conn: &mut Connection) -> Ran {
        // A panicking write fails alone; the thread, and the other writes, go on.
        let result = catch_unwind(AssertUnwindSafe(|| (self.op)(conn)))
            .unwrap_or_else(|_| Err(unavailable("the write panicked".into())));
        let ran = match &result {
            Ok(_) => Ran::Done,
            Err(fail) if fail.spoils_connection() => Ran::Spoiled,
            Err(_) => Ran::Failed,
        };
        self.result = Some(result);
        ran
    }

    fn answer(self: Box<Self>, committed: Result<(), &str>) {
        let answer = match (self.result, committed) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(why)) => Err(unavailable(format!("the write was not committed: {why}"))),
            (None, Ok(())) => Err(unavailable("the write was not run".into())),
        };
        // A caller that stopped waiting needs no answer.
        let _ = self.reply.send(answer);
    }
}

fn unavailable(why: String) -> Fail {
    Fail::Store(StoreError::Unavailable(why.into()))
}

enum Job {
    /// Joins a group transaction.
    Grouped(Box<dyn Pending>),
    /// Runs by itself, outside any transaction (a migration, which switches foreign keys off).
    Alone(Box<dyn Pending>),
}

/// The connection, reopened after a failure that spoiled it.
#[derive(Debug)]
struct Held {
    target: Target,
    conn: Option<Connection>,
    closed: bool,
    /// Told of every commit, so that their snapshots follow.
    readers: Option<Arc<Readers>>,
}

impl Held {
    fn call<T>(&mut self, op: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T, Fail> {
        if self.closed {
            return Err(closed());
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => open(&self.target, Role::Writer)?,
        };
        let conn = self.conn.insert(conn);
        let result = op(conn);
        if let Some(readers) = &self.readers {
            readers.committed();
        }
        if matches!(&result, Err(fail) if fail.spoils_connection()) {
            self.discard();
        }
        result
    }

    /// A tail's checkpoint, meant to copy every frame so that the next write starts the WAL over; a failure is
    /// only logged: the WAL keeps what was not copied, for the next one.
    ///
    /// Readers' snapshots pin the frames after the ones they read: the idle readers' end before, and again
    /// before a second try when one in use held the first back. They end after it too, so that none taken
    /// meanwhile holds the WAL's start.
    fn checkpoint(&mut self) {
        let end_snapshots = |held: &Held| {
            if let Some(readers) = &held.readers {
                readers.end_snapshots();
            }
        };
        end_snapshots(self);
        let mut copied = self.call(|conn| checkpoint(conn));
        if copied.as_ref().is_ok_and(|copied| !copied.complete()) {
            end_snapshots(self);
            copied = self.call(|conn| checkpoint(conn));
        }
        end_snapshots(self);
        if let Err(fail) = copied {
            tracing::warn!(error = %fail, "SQLite WAL checkpoint failed; trying again later");
        }
    }

    /// Close a suspect connection; the next call opens a new one. An in-memory database lives in its
    /// connection: that one is kept whatever happened.
    fn discard(&mut self) {
        if self.target != Target::Memory {
            self.conn = None;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent (a panic in a write is caught inside).
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The handle to the writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    /// `None` once closed: the thread ends when it has answered what was queued before.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    held: Arc<Mutex<Held>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Grouped(_) => "Grouped",
            Job::Alone(_) => "Alone",
        })
    }
}

impl Writer {
    /// Start the thread with `conn`, the writer's connection to `target`; it copies the tails `tail` reports,
    /// and tells `readers` of its commits.
    pub(super) fn start(
        target: Target,
        conn: Connection,
        tail: Tail,
        readers: Option<Arc<Readers>>,
    ) -> StoreResult<Writer> {
        let held = Arc::new(Mutex::new(Held { target, conn: Some(conn), closed: false, readers }));
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("authflow-sqlite-writer".into())
            .spawn({
                let held = held.clone();
                move || serve(&held, &queue, &tail)
            })
            .map_err(StoreError::unavailable)?;
        Ok(Writer { jobs: Mutex::new(Some(jobs)), held, thread: Mutex::new(Some(thread)) })
    }

    /// Run `op` in the next group transaction; the answer comes after its commit. Waits at most `budget`:
    /// while writes come faster than they are done, requests fail (503) rather than queue without end (a
    /// write whose caller gave up before it ran is dropped).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        budget: Duration,
        op: impl Fn(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, Fail> {
        self.submit(Some(budget), Job::Grouped, op).await
    }

    /// Run `op` by itself, outside any transaction (it manages its own), however long it takes.
    pub(super) async fn alone<T: Send + 'static>(
        &self,
        op: impl Fn(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, Fail> {
        self.submit(None, Job::Alone, op).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        budget: Option<Duration>,
        job: impl FnOnce(Box<dyn Pending>) -> Job,
        op: impl Fn(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, Fail> {
        let (reply, answer) = oneshot::channel();
        let call = Box::new(Call { op, result: None, reply });
        let sent = lock(&self.jobs).as_ref().map(|jobs| jobs.send(job(call)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(closed());
        }
        let answer = match budget {
            Some(budget) => tokio::time::timeout(budget, answer)
                .await
                .map_err(|_| unavailable("timed out waiting for the SQLite writer".into()))?,
            None => answer.await,
        };
        answer.unwrap_or_else(|_| Err(unavailable("the SQLite writer stopped".into())))
    }

    /// Run `op` on the writer's connection on this thread, between two groups: the reads of an in-memory
    /// database, which only this connection sees.
    pub(super) fn inline<T>(&self, op: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T, Fail> {
        lock(&self.held).call(op)
    }

    /// Refuse every later write; the thread answers what is queued, closes the connection and ends. Join
    /// the returned thread to wait for that.
    pub(super) fn close(&self) -> Option<JoinHandle<()>> {
        lock(&self.jobs).take();
        lock(&self.thread).take()
    }
}

/// The thread: groups of writes, and the tails of checkpoints between them, until the handle is closed or
/// dropped.
fn serve(held: &Mutex<Held>, queue: &mpsc::Receiver<Job>, tail: &Tail) {
    let mut next = None;
    let mut spin = Spin::default();
    loop {
        if tail.take() {
            lock(held).checkpoint();
        }
        let job = match next.take() {
            Some(job) => job,
            None => match spin.next(queue) {
                Ok(job) => job,
                Err(mpsc::RecvError) => break,
            },
        };
        match job {
            Job::Alone(mut call) => {
                if call.abandoned() {
                    continue;
                }
                let mut held = lock(held);
                let ran = held.call(|conn| Ok(call.run(conn)));
                if ran.as_ref().is_ok_and(|ran| *ran == Ran::Spoiled) {
                    held.discard();
                }
                drop(held);
                let outcome = ran.map(drop).map_err(|fail| fail.to_string());
                call.answer(outcome.as_ref().map(|_| ()).map_err(String::as_str));
            }
            Job::Grouped(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(Job::Grouped(call)) => group.push(call),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                group.retain(|call| !call.abandoned());
                if group.is_empty() {
                    continue;
                }
                let committed = {
                    let mut held = lock(held);
                    let committed = held.call(|conn| run_group(conn, &mut group));
                    if matches!(committed, Err(Fail::Store(StoreError::Unavailable(_)))) {
                        // `run_group`'s own failures: a write spoiled the connection, or it could not roll back.
                        held.discard();
                    }
                    committed.map_err(|fail| fail.to_string())
                };
                for call in group {
                    call.answer(committed.as_ref().map(|_| ()).map_err(String::as_str));
                }
            }
        }
    }
    let mut held = lock(held);
    held.closed = true;
    held.conn = None;
}

/// One transaction for `group`; if a write fails, a second one with a savepoint per write, so that the
/// failed write rolls back alone. Fails whole if anything but a write's own failure goes wrong.
fn run_group(conn: &mut Connection, group: &mut [Box<dyn Pending>]) -> Result<(), Fail> {
    if !transaction(conn, group, false)? {
        transaction(conn, group, true)?;
    }
    Ok(())
}

/// Run `group` in one transaction: committed (`true`), or rolled back because a write failed and there
/// were no `savepoints` to undo it alone (`false`).
fn transaction(conn: &mut Connection, group: &mut [Box<dyn Pending>], savepoints: bool) -> Result<bool, Fail> {
    fn step(conn: &Connection, statement: &str) -> Result<(), Fail> {
        conn.prepare_cached(statement)?.execute([])?;
        Ok(())
    }
    step(conn, "BEGIN IMMEDIATE")?;
    let ran = (|| {
        for call in group.iter_mut() {
            // Checked again here: `BEGIN` may have waited for another process's lock.
            if call.abandoned() {
                continue;
            }
            if savepoints {
                step(conn, "SAVEPOINT write")?;
            }
            match call.run(conn) {
                Ran::Done if savepoints => step(conn, "RELEASE write")?,
                Ran::Done => {}
                Ran::Failed if savepoints => {
                    step(conn, "ROLLBACK TO write")?;
                    step(conn, "RELEASE write")?;
                }
                Ran::Failed => return Ok(false),
                Ran::Spoiled => return Err(unavailable("a write failed on a broken connection".into())),
            }
        }
        step(conn, "COMMIT").map(|()| true)
    })();
    if !matches!(ran, Ok(true)) && !conn.is_autocommit() {
        // Nothing of the group stays; a connection that cannot even roll back is replaced.
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "SQLite rollback failed; reopening the writer's connection");
            return Err(unavailable(format!("rollback failed: {e}")));
        }
    }
    ran
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn memory_writer() -> Writer {
        let conn = open(&Target::Memory, Role::Writer).unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        Writer::start(Target::Memory, conn, Tail::default(), None).unwrap()
    }

    fn insert(k: &'static str) -> impl Fn(&mut Connection) -> Result<(), Fail> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
            Ok(())
        }
    }

    fn keys(writer: &Writer) -> Vec<String> {
        writer
            .inline(|conn| {
                let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k")?;
                let rows = stmt.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    /// Occupy the thread until the returned sender is dropped.
    fn occupy(writer: &Arc<Writer>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel();
        let busy = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .write(Duration::from_secs(30), move |_| {
                        started.send(()).unwrap();
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        });
        running.recv().unwrap();
        (release, busy)
    }

    /// Inserts each of `keys` in turn, counting its runs.
    fn insert_all(
        keys: &'static [&'static str],
        runs: &Arc<AtomicUsize>,
    ) -> impl Fn(&mut Connection) -> Result<(), Fail> + Send + 'static {
        let runs = runs.clone();
        move |conn| {
            runs.fetch_add(1, Ordering::Relaxed);
            for k in keys {
                conn.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
            }
            Ok(())
        }
    }

    /// The writes of `group`, queued behind a busy write so that they run as one group.
    async fn in_one_group(
        writer: &Arc<Writer>,
        group: Vec<&'static [&'static str]>,
    ) -> (Vec<Result<(), Fail>>, Vec<usize>) {
        let (release, busy) = occupy(writer);
        let counters: Vec<_> = group.iter().map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let writes: Vec<_> = group
            .iter()
            .zip(&counters)
            .map(|(keys, runs)| {
                let (writer, op) = (writer.clone(), insert_all(keys, runs));
                tokio::spawn(async move { writer.write(Duration::from_secs(30), op).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(release);
        busy.await.unwrap();
        let mut outcomes = Vec::new();
        for write in writes {
            outcomes.push(write.await.unwrap());
        }
        (outcomes, counters.iter().map(|c| c.load(Ordering::Relaxed)).collect())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_without_failures_runs_each_write_once() {
        let writer = Arc::new(memory_writer());
        let (outcomes, runs) = in_one_group(&writer, vec![&["a"], &["b", "c"], &["d"]]).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(runs, [1, 1, 1]);
        assert_eq!(keys(&writer), ["a", "b", "c", "d"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_half_way_is_undone_whole_and_its_group_runs_again() {
        let writer = Arc::new(memory_writer());
        // The second write inserts `x`, then fails on inserting it again: its first `x` must not stay.
        let (outcomes, runs) = in_one_group(&writer, vec![&["a"], &["x", "x"], &["b"]]).await;
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(matches!(&outcomes[1], Err(fail) if fail.to_string().contains("UNIQUE")), "{outcomes:?}");
        // The first pass stopped at the failure and was rolled back; the second, with savepoints, ran all.
        // (The tasks may queue in any order: the writes queued after the failing one ran once.)
        assert_eq!(runs[1], 2, "{runs:?}");
        assert_eq!(keys(&writer), ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_a_transaction_and_a_failed_one_rolls_back_alone() {
        let writer = Arc::new(memory_writer());
        let (release, busy) = occupy(&writer);
        // Queued behind the busy write: they run together in the next group.
        let writes = ["a", "b", "a", "c"].map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.write(Duration::from_secs(30), insert(k)).await })
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(release);
        busy.await.unwrap();
        let mut outcomes = Vec::new();
        for write in writes {
            outcomes.push(write.await.unwrap().map_err(|fail| fail.into_store("row")));
        }
        let conflicts = outcomes.iter().filter(|o| matches!(o, Err(StoreError::Conflict("row")))).count();
        assert_eq!(conflicts, 1, "the second `a` fails, alone: {outcomes:?}");
        assert_eq!(keys(&writer), ["a", "b", "c"], "the others committed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_caller_gave_up_is_not_run() {
        let writer = Arc::new(memory_writer());
        let (release, busy) = occupy(&writer);
        let late = writer.write(Duration::from_millis(20), insert("late")).await;
        assert!(matches!(late.map_err(|f| f.into_store("row")), Err(StoreError::Unavailable(_))));
        drop(release);
        busy.await.unwrap();
        writer.write(Duration::from_secs(30), insert("next")).await.unwrap();
        assert_eq!(keys(&writer), ["next"], "the abandoned write never ran");
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let writer = memory_writer();
        let panicked = writer.write(Duration::from_secs(30), |_| -> Result<(), Fail> { panic!("boom") }).await;
        assert!(matches!(panicked.map_err(|f| f.into_store("row")), Err(StoreError::Unavailable(_))));
        writer.write(Duration::from_secs(30), insert("after")).await.unwrap();
        assert_eq!(keys(&writer), ["after"]);
    }

    #[tokio::test]
    async fn after_close_writes_are_refused_and_the_thread_ends() {
        let writer = memory_writer();
        writer.write(Duration::from_secs(30), insert("x")).await.unwrap();
        writer.close().expect("the thread").join().unwrap();
        let refused = writer.write(Duration::from_secs(30), insert("y")).await;
        assert!(matches!(refused.map_err(|f| f.into_store("row")), Err(StoreError::Unavailable(_))));
        assert!(writer.inline(|_| Ok(())).is_err(), "the connection is closed");
    }
}
