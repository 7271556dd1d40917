//! Checkpoints: copying the WAL back into the database file, and syncing both.
//!
//! In two parts, because neither alone keeps the WAL small under a steady stream of writes:
//!
//! - a **background thread** copies it every [`CHECKPOINT_EVERY`] (250 ms), beside the writes, syncs included;
//! - once the WAL has grown to [`TAIL_FRAMES`], it leaves the **tail**, what writes added meanwhile, to the
//!   writer's thread, which copies those few frames between two groups. The WAL is then complete, and the
//!   next write starts it over from its beginning.
//!
//! A checkpoint only beside the writes never catches up with them: the WAL grows without end (gigabytes within
//! seconds under load). One only on the writer's thread holds every write up while it syncs (a third of the
//! time under load).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::conn::{open, Fail, Readers, Role, Target};
use crate::{StoreError, StoreResult};

/// How often the background thread checkpoints. Often enough that under a steady stream of writes the WAL
/// stays within [`super::conn::WAL_SIZE_LIMIT`] (file blocks reused rather than cut off and allocated again)
/// and each tail is short: 250 ms measured 10 % more issuances per second than 1 s.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Once the WAL holds this many frames (32 MiB of 4 KiB pages), the background thread leaves the tail to the
/// writer's thread. A tail holds writes up for the length of two syncs (~50 ms measured under load, however
/// short the tail): leaving one after every checkpoint (4 a second) cost 10 % of the issuances and put a p99
/// of 25–36 ms on them; at 32 MiB, p99 is 8–9 ms. Half [`super::conn::WAL_SIZE_LIMIT`], so that the WAL file
/// is seldom cut back and grown again.
pub(super) const TAIL_FRAMES: i64 = 8_192;

/// Copy what the WAL holds into the database file, `PASSIVE`ly: frames a reader still needs, or frames that
/// another checkpoint is copying, stay for next time.
pub(super) fn checkpoint(conn: &Connection) -> Result<Copied, Fail> {
    // (busy, frames in the WAL, frames copied)
    let (frames, copied) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)))?;
    Ok(Copied { frames, copied })
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Copied {
    /// Frames in the WAL; -1 when another checkpoint was running.
    pub(super) frames: i64,
    /// Frames now in the database file.
    pub(super) copied: i64,
}

impl Copied {
    /// Every frame is in the database file: the next write starts the WAL over.
    pub(super) fn complete(self) -> bool {
        self.frames >= 0 && self.copied == self.frames
    }
}

/// Set by the background thread after a checkpoint of a WAL of [`TAIL_FRAMES`] or more, taken by the writer's
/// thread.
///
/// Writes may have landed while it ran (it cannot know): the writer's thread, where none can, copies them.
/// When none did, that costs it a look at the WAL's index and no sync. A smaller WAL starts over by itself
/// once writes pause for the length of one background checkpoint.
#[derive(Debug, Clone, Default)]
pub(super) struct Tail(Arc<AtomicBool>);

impl Tail {
    /// Whether a tail is waiting; it is the caller's to copy from now on.
    pub(super) fn take(&self) -> bool {
        // Cheap when nothing waits: this runs after every group.
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::AcqRel)
    }

    fn leave(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn waiting(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The background thread, with a connection of its own. It ends, after a last checkpoint, when stopped or
/// dropped. A thread rather than a task on the runtime: it blocks in fsync, and it must go on as long as the
/// store lives, whichever runtime the store is used from.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Checkpoint `target` every `every`, leaving tails (of a WAL of `tail_frames` or more) to whoever holds
    /// the returned [`Tail`]; the snapshots of idle `readers` end first.
    pub(super) fn start(
        target: &Target,
        every: Duration,
        tail_frames: i64,
        readers: Option<Arc<Readers>>,
    ) -> StoreResult<(Checkpointer, Tail)> {
        let conn = open(target, Role::Checkpointer).map_err(|e| Fail::from(e).into_store("connection"))?;
        let tail = Tail::default();
        // Nothing is ever sent: the sender's drop is the signal.
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("authflow-sqlite-checkpoint".into())
            .spawn({
                let tail = tail.clone();
                move || {
                    // The idle readers' snapshots end first: they would pin the frames after theirs.
                    let checkpoint = || {
                        if let Some(readers) = &readers {
                            readers.end_snapshots();
                        }
                        checkpoint(&conn)
                    };
                    let mut skipped = false;
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        // Not while the writer's thread has a tail to copy: one checkpoint runs at a time, and
                        // under load the tail would seldom get its turn. Only once, though: an idle writer
                        // takes no tail, and writes from another process still need their sync.
                        if tail.waiting() && !skipped {
                            skipped = true;
                            continue;
                        }
                        skipped = false;
                        match checkpoint() {
                            Ok(Copied { frames, .. }) if frames < 0 || frames >= tail_frames => tail.leave(),
                            Ok(_) => {}
                            Err(fail) => {
                                tracing::debug!(error = %fail, "SQLite WAL checkpoint failed; trying again later")
                            }
                        }
                    }
                    let _ = checkpoint();
                }
            })
            .map_err(StoreError::unavailable)?;
        Ok((Checkpointer { stop, thread }, tail))
    }

    /// Stop the thread after a last checkpoint, and wait for it (blocking).
    pub(super) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::writer::Writer;
    use super::*;

    /// Writes that never pause, spread over the B-tree like token hashes, beside readers that read all along
    /// and idle readers that hold snapshots taken before the writes: the WAL keeps starting over. (With the
    /// background checkpoints alone it grows with every write; it also stops starting over without the
    /// writer's tails, or when readers' snapshots outlive the commits and checkpoints they predate.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_writes_the_wal_keeps_starting_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steady.db");
        let target = Target::File(path.clone());
        let conn = open(&target, Role::Writer).unwrap();
        conn.execute_batch("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID").unwrap();
        // Snapshots that no commit of this process ends: only these readers' next calls would, and the two
        // idle ones get none.
        let readers = Arc::new(Readers::with_snapshot_age(target.clone(), 4, Duration::from_secs(3600)));
        // A point read: it takes a snapshot, and costs little whatever the table holds.
        let read = |conn: &Connection| {
            Ok(conn.query_row("SELECT count(*) FROM t WHERE k = x'00'", [], |row| row.get::<_, i64>(0))?)
        };
        readers.call(|outer| readers.call(read).and_then(|_| read(outer))).unwrap();
        let (checkpointer, tail) =
            Checkpointer::start(&target, Duration::from_millis(10), 1, Some(readers.clone())).unwrap();
        let writer = Arc::new(Writer::start(target, conn, tail, Some(readers.clone())).unwrap());
        let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reading: Vec<_> = (0..2)
            .map(|_| {
                let (readers, writing) = (readers.clone(), writing.clone());
                tokio::spawn(async move {
                    while writing.load(Ordering::Relaxed) {
                        readers.call(read).unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let tasks = (0..8u64).map(|task| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..3_000u64 {
                    let key = ((task << 32) | i).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
                    let write = move |conn: &mut Connection| {
                        conn.execute("INSERT INTO t (k, v) VALUES (?1, zeroblob(400))", [&key[..]])?;
                        Ok(())
                    };
                    writer.write(Duration::from_secs(30), write).await.unwrap();
                }
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap();
        }
        writing.store(false, Ordering::Relaxed);
        for task in reading {
            task.await.unwrap();
        }
        let size = |suffix: &str| std::fs::metadata(dir.path().join(format!("steady.db{suffix}"))).unwrap().len();
        let (database, wal) = (size(""), size("-wal"));
        assert!(database > 8 << 20, "every row reached the database file: {database} bytes");
        // The WAL's header counts its restarts (the checkpoint sequence number, bytes 12-15).
        let header = std::fs::read(dir.path().join("steady.db-wal")).unwrap();
        let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
        // Measured: 57-76 restarts, and a WAL of 12-23 MB for a 12 MB database, also while the disk was busy
        // writing back other files; 7-8 restarts and 61 MB when the snapshots of readers in use outlived the
        // commits and checkpoints they predated; without the tails, no restart and 250 MB.
        assert!(restarts >= 20, "the WAL started over {restarts} times");
        assert!(wal < 8 * database, "the WAL ({wal} bytes) holds some intervals' writes, not all of them");
        writer.close().expect("the thread").join().unwrap();
        checkpointer.stop();
    }
}
