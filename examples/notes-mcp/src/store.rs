//! Notes in SQLite, one owner per token principal.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

/// Why the notes database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not a SQLite URL sqlx understands.
    #[error("invalid notes database URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("notes database error: {0}")]
    Database(#[from] sqlx::Error),
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

/// The notes database. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct NoteStore {
    pool: SqlitePool,
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

fn note(row: &sqlx::sqlite::SqliteRow) -> Result<Note, sqlx::Error> {
    Ok(Note {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl NoteStore {
    /// Open (creating if needed) the database at `url`: `sqlite://notes.db` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<NoteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::Url { url: url.to_owned(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        // An in-memory database exists once per connection: keep exactly one.
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new().max_connections(if memory { 1 } else { 4 }).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(NoteStore { pool })
    }

    /// An empty in-memory database (tests, throwaway servers).
    pub async fn memory() -> Result<NoteStore, StoreError> {
        Self::open("sqlite::memory:").await
    }

    /// `owner`'s notes, oldest first.
    pub async fn list(&self, owner: &str) -> Result<Vec<Note>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM notes WHERE owner = ? ORDER BY id").bind(owner).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(note).collect::<Result<_, _>>()?)
    }

    /// One of `owner`'s notes.
    pub async fn get(&self, owner: &str, id: i64) -> Result<Option<Note>, StoreError> {
        let row = sqlx::query("SELECT * FROM notes WHERE owner = ? AND id = ?")
            .bind(owner)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(note).transpose()?)
    }

    /// Add a note for `owner`.
    pub async fn create(&self, owner: &str, title: &str, body: &str) -> Result<Note, StoreError> {
        let now = now();
        let row = sqlx::query(
            "INSERT INTO notes (owner, title, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(owner)
        .bind(title)
        .bind(body)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(note(&row)?)
    }

    /// Change the title and/or the body of one of `owner`'s notes; `None` if there is no such note.
    pub async fn update(
        &self,
        owner: &str,
        id: i64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<Option<Note>, StoreError> {
        let row = sqlx::query(
            "UPDATE notes SET title = COALESCE(?, title), body = COALESCE(?, body), updated_at = ? \
             WHERE owner = ? AND id = ? RETURNING *",
        )
        .bind(title)
        .bind(body)
        .bind(now())
        .bind(owner)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(note).transpose()?)
    }

    /// Delete one of `owner`'s notes; whether it existed.
    pub async fn delete(&self, owner: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notes WHERE owner = ? AND id = ?")
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
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
}
