//! Notes in SQLite, one owner per token principal.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Params, Row};
use serde::Serialize;
use tokio::sync::Mutex;

/// Why the notes database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not a SQLite URL (`sqlite://notes.db`, `sqlite::memory:`).
    #[error("invalid notes database URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("notes database error: {0}")]
    Database(#[from] rusqlite::Error),
}

/// One note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The note's id (unique across owners).
    pub id: i64,
    /// A short title.
    pub title: String,
    /// The text.
    pub body: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
}

/// The notes database. Clones share one connection.
///
/// A note is a row or two: each call runs its statement inline, on the calling task's thread, holding the
/// connection's async lock, which costs less than handing it to another thread.
#[derive(Debug, Clone)]
pub struct NoteStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_owner ON notes (owner, id);";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn note(row: &Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: row.get("id")?,
        title: row.get("title")?,
        body: row.get("body")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// The notes a statement returns; it runs to its end, so a write's commit (and any error it meets) is done.
fn notes(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<Vec<Note>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut notes = Vec::new();
    while let Some(row) = rows.next()? {
        notes.push(note(row)?);
    }
    Ok(notes)
}

/// `None` for `sqlite::memory:` (or `?mode=memory`), else the file a `sqlite://` URL names.
fn database_path(url: &str) -> Result<Option<&Path>, StoreError> {
    let invalid = |why: &str| StoreError::Url { url: url.to_owned(), source: why.into() };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid("expected sqlite://path or sqlite::memory:"))?;
    let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
    if database == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return Ok(None);
    }
    if database.is_empty() {
        return Err(invalid("no database file"));
    }
    Ok(Some(Path::new(database)))
}

impl NoteStore {
    /// Open (creating if needed) the database at `url`: `sqlite://notes.db` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<NoteStore, StoreError> {
        // An in-memory database exists once per connection: the one connection keeps it.
        let conn = match database_path(url)? {
            None => Connection::open_in_memory()?,
            Some(path) => {
                let flags =
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
                conn
            }
        };
        conn.execute_batch(SCHEMA)?;
        Ok(NoteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// An empty in-memory database (tests, throwaway servers).
    pub async fn memory() -> Result<NoteStore, StoreError> {
        Self::open("sqlite::memory:").await
    }

    /// `owner`'s notes, oldest first.
    pub async fn list(&self, owner: &str) -> Result<Vec<Note>, StoreError> {
        let conn = self.conn.lock().await;
        Ok(notes(&conn, "SELECT * FROM notes WHERE owner = ? ORDER BY id", (owner,))?)
    }

    /// One of `owner`'s notes.
    pub async fn get(&self, owner: &str, id: i64) -> Result<Option<Note>, StoreError> {
        let conn = self.conn.lock().await;
        Ok(notes(&conn, "SELECT * FROM notes WHERE owner = ? AND id = ?", (owner, id))?.pop())
    }

    /// Add a note for `owner`.
    pub async fn create(&self, owner: &str, title: &str, body: &str) -> Result<Note, StoreError> {
        let now = now();
        let conn = self.conn.lock().await;
        let created = notes(
            &conn,
            "INSERT INTO notes (owner, title, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
            (owner, title, body, now, now),
        )?;
        created.into_iter().next().ok_or(StoreError::Database(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Change the title and/or the body of one of `owner`'s notes; `None` if there is no such note.
    pub async fn update(
        &self,
        owner: &str,
        id: i64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<Option<Note>, StoreError> {
        let conn = self.conn.lock().await;
        let updated = notes(
            &conn,
            "UPDATE notes SET title = COALESCE(?, title), body = COALESCE(?, body), updated_at = ? \
             WHERE owner = ? AND id = ? RETURNING *",
            (title, body, now(), owner, id),
        )?;
        Ok(updated.into_iter().next())
    }

    /// Delete one of `owner`'s notes; whether it existed.
    pub async fn delete(&self, owner: &str, id: i64) -> Result<bool, StoreError> {
        let conn = self.conn.lock().await;
        let deleted = conn.prepare_cached("DELETE FROM notes WHERE owner = ? AND id = ?")?.execute((owner, id))?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_belong_to_their_owner() {
        let store = NoteStore::memory().await.unwrap();
        let a = store.create("alice", "milk", "buy milk").await.unwrap();
        store.create("bob", "eggs", "buy eggs").await.unwrap();
        assert_eq!(store.list("alice").await.unwrap(), vec![a.clone()]);
        assert_eq!(store.get("bob", a.id).await.unwrap(), None, "bob cannot read alice's note");
        assert_eq!(store.update("bob", a.id, Some("x"), None).await.unwrap(), None);
        assert!(!store.delete("bob", a.id).await.unwrap());

        let updated = store.update("alice", a.id, None, Some("buy oat milk")).await.unwrap().unwrap();
        assert_eq!((updated.title.as_str(), updated.body.as_str()), ("milk", "buy oat milk"));
        assert!(store.delete("alice", a.id).await.unwrap());
        assert!(store.list("alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_file_database_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("notes.db").display());
        let store = NoteStore::open(&url).await.unwrap();
        let n = store.create("alice", "t", "b").await.unwrap();
        drop(store);
        let store = NoteStore::open(&url).await.unwrap();
        assert_eq!(store.get("alice", n.id).await.unwrap(), Some(n));
    }

    #[test]
    fn urls() {
        assert_eq!(database_path("sqlite://notes.db").unwrap(), Some(Path::new("notes.db")));
        assert_eq!(database_path("sqlite:///var/notes.db?mode=rwc").unwrap(), Some(Path::new("/var/notes.db")));
        assert_eq!(database_path("sqlite::memory:").unwrap(), None);
        assert_eq!(database_path("sqlite://?mode=memory").unwrap(), None);
        for bad in ["postgres://x/y", "sqlite://"] {
            assert!(matches!(database_path(bad), Err(StoreError::Url { .. })), "{bad}");
        }
    }
}
