//! Schema migrations: `migrations/sqlite/*.sql`, each applied once, in order, in a transaction of its own,
//! and recorded in `authflow_migrations`.
//!
//! Databases made before this runner were migrated by sqlx, which recorded its work in `_sqlx_migrations`;
//! the first run here adopts the versions recorded there, so they are not applied again.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::conn::Fail;
use crate::StoreError;

/// One schema change.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) description: &'static str,
    pub(super) sql: &'static str,
}

/// Every migration, in order. The descriptions are those sqlx gave (from the file names), so an adopted
/// history reads the same as a new one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
    Migration {
        version: 2,
        description: "sessions consents",
        sql: include_str!("../../migrations/sqlite/0002_sessions_consents.sql"),
    },
    Migration {
        version: 3,
        description: "metadata document clients",
        sql: include_str!("../../migrations/sqlite/0003_metadata_document_clients.sql"),
    },
    Migration {
        version: 4,
        description: "grants subject",
        sql: include_str!("../../migrations/sqlite/0004_grants_subject.sql"),
    },
    Migration {
        version: 5,
        description: "append friendly tokens",
        sql: include_str!("../../migrations/sqlite/0005_append_friendly_tokens.sql"),
    },
    Migration {
        version: 6,
        description: "standalone access tokens",
        sql: include_str!("../../migrations/sqlite/0006_standalone_access_tokens.sql"),
    },
];

const CREATE_HISTORY: &str = "CREATE TABLE authflow_migrations (version INTEGER PRIMARY KEY, \
     description TEXT NOT NULL, applied_at INTEGER NOT NULL)";
const ADOPT_SQLX_HISTORY: &str = "INSERT INTO authflow_migrations (version, description, applied_at) \
     SELECT version, description, COALESCE(CAST(strftime('%s', installed_on) AS INTEGER) * 1000, ?1) \
     FROM _sqlx_migrations WHERE success";
const TABLE_EXISTS: &str = "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1";
const APPLIED: &str = "SELECT version FROM authflow_migrations ORDER BY version";
const IS_APPLIED: &str = "SELECT 1 FROM authflow_migrations WHERE version = ?1";
const RECORD: &str = "INSERT INTO authflow_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)";

/// Apply every pending migration on `conn` (the writer), synchronously.
///
/// Foreign-key enforcement is off meanwhile, as SQLite's procedure for rebuilding a table requires (the
/// rebuild's `DROP TABLE` would otherwise cascade into every table that references it); the pragma is a no-op
/// inside a transaction, so it is switched here, between them. Every foreign key is then checked before
/// enforcement is switched back on: dangling rows are [`StoreError::Corrupt`].
pub(super) fn run(conn: &mut Connection) -> Result<(), Fail> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = apply_pending(conn);
    let dangling = dangling_rows(conn);
    let enforced = conn.pragma_update(None, "foreign_keys", true);
    applied?;
    enforced?;
    match dangling? {
        0 => Ok(()),
        n => Err(StoreError::Corrupt(format!("{n} rows reference missing rows after migrating")).into()),
    }
}

fn apply_pending(conn: &mut Connection) -> Result<(), Fail> {
    let now = now_millis();
    if !table_exists(conn, "authflow_migrations")? {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Checked again under the write lock: another process may have been first.
        if !table_exists(&tx, "authflow_migrations")? {
            tx.execute(CREATE_HISTORY, [])?;
            if table_exists(&tx, "_sqlx_migrations")? {
                tx.execute(ADOPT_SQLX_HISTORY, [now])?;
            }
        }
        tx.commit()?;
    }

    let applied = {
        let mut stmt = conn.prepare(APPLIED)?;
        let versions = stmt.query_map([], |row| row.get::<_, i64>(0))?;
        versions.collect::<rusqlite::Result<Vec<i64>>>()?
    };
    if let Some(unknown) = applied.iter().find(|v| !MIGRATIONS.iter().any(|m| m.version == **v)) {
        return Err(StoreError::Unavailable(
            format!("the database has migration {unknown}, unknown to this version of authflow (a newer one made it?)")
                .into(),
        )
        .into());
    }

    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have applied it since we looked: then dropping `tx` changes nothing.
        if tx.query_row(IS_APPLIED, [migration.version], |_| Ok(())).optional()?.is_none() {
            tx.execute_batch(migration.sql)?;
            tx.execute(RECORD, rusqlite::params![migration.version, migration.description, now])?;
            tx.commit()?;
            tracing::info!(version = migration.version, description = migration.description, "applied migration");
        }
    }
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(TABLE_EXISTS, [name], |_| Ok(())).optional().map(|found| found.is_some())
}

fn dangling_rows(conn: &Connection) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::conn::{open, Role, Target};
    use super::*;

    fn history(conn: &Connection) -> Vec<(i64, String)> {
        let mut stmt = conn.prepare("SELECT version, description FROM authflow_migrations ORDER BY version").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn complete() -> Vec<(i64, String)> {
        MIGRATIONS.iter().map(|m| (m.version, m.description.to_owned())).collect()
    }

    fn foreign_keys(conn: &Connection) -> bool {
        conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i64).collect::<Vec<_>>());
    }

    #[test]
    fn fresh_database_gets_everything_once_and_again_is_a_no_op() {
        let mut conn = open(&Target::Memory, Role::Writer).unwrap();
        run(&mut conn).unwrap();
        assert_eq!(history(&conn), complete());
        assert!(foreign_keys(&conn), "enforcement is back on");
        run(&mut conn).unwrap();
        assert_eq!(history(&conn), complete());
    }

    #[test]
    fn dangling_rows_are_reported() {
        let mut conn = open(&Target::Memory, Role::Writer).unwrap();
        run(&mut conn).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute("INSERT INTO grants (id, client_id, created_at, expires_at) VALUES ('g', 'nobody', 1, 2)", [])
            .unwrap();
        let err = run(&mut conn).unwrap_err().into_store("migration");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(foreign_keys(&conn), "enforcement is back on after a failure too");
    }

    /// Versions 5 and 6 rebuild the grant and token tables: what a version-4 database held is all still there.
    #[test]
    fn rebuilding_the_token_tables_keeps_their_rows() {
        let mut conn = open(&Target::Memory, Role::Writer).unwrap();
        conn.execute_batch(CREATE_HISTORY).unwrap();
        for m in &MIGRATIONS[..4] {
            conn.execute_batch(m.sql).unwrap();
            conn.execute(RECORD, rusqlite::params![m.version, m.description, 0]).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO clients (id, metadata, origin, created_at) VALUES ('c', '{}', 'static', 1);
             INSERT INTO grants (id, client_id, subject, created_at, expires_at) VALUES ('g', 'c', 'alice', 1, 9);
             INSERT INTO access_tokens (token_hash, grant_id, client_id, subject, resources, issued_at, expires_at)
                 VALUES (zeroblob(32), 'g', 'c', 'alice', '[]', 1, 5);
             INSERT INTO refresh_tokens (token_hash, grant_id, client_id, resources, issued_at, expires_at, rotated_at)
                 VALUES (randomblob(32), 'g', 'c', '[]', 1, 9, 3);",
        )
        .unwrap();
        run(&mut conn).unwrap();
        assert_eq!(history(&conn), complete());
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT count(*) FROM grants WHERE id = 'g' AND subject = 'alice' AND expires_at = 9"), 1);
        assert_eq!(count("SELECT count(*) FROM access_tokens WHERE token_hash = zeroblob(32) AND grant_id = 'g'"), 1);
        assert_eq!(count("SELECT count(*) FROM refresh_tokens WHERE rotated_at = 3"), 1);
        // The hash stays unique, and the cascade from a grant to its tokens still holds.
        let twice = "INSERT INTO access_tokens (token_hash, grant_id, client_id, resources, issued_at, expires_at) \
                     VALUES (zeroblob(32), 'g', 'c', '[]', 2, 6)";
        assert!(conn.execute(twice, []).is_err());
        // Since version 6 a token may have no grant, but not one that does not exist.
        let alone = "INSERT INTO access_tokens (token_hash, client_id, resources, issued_at, expires_at) \
                     VALUES (randomblob(32), 'c', '[]', 2, 6)";
        conn.execute(alone, []).unwrap();
        let dangling = "INSERT INTO access_tokens (token_hash, grant_id, client_id, resources, issued_at, expires_at) \
                        VALUES (randomblob(32), 'nowhere', 'c', '[]', 2, 6)";
        assert!(conn.execute(dangling, []).is_err());
        // A grant's tokens are found through the index that leaves the grantless out.
        let plan: String = conn
            .query_row("EXPLAIN QUERY PLAN SELECT rowid FROM access_tokens WHERE grant_id = ?1", ["g"], |r| r.get(3))
            .unwrap();
        assert!(plan.contains("access_tokens_grant"), "{plan}");
        conn.execute("DELETE FROM grants WHERE id = 'g'", []).unwrap();
        assert_eq!(count("SELECT (SELECT count(*) FROM access_tokens) + (SELECT count(*) FROM refresh_tokens)"), 1);
        assert_eq!(count("SELECT count(*) FROM access_tokens WHERE grant_id IS NULL"), 1);
        conn.execute("DELETE FROM clients WHERE id = 'c'", []).unwrap();
        assert_eq!(count("SELECT count(*) FROM access_tokens"), 0, "a client's deletion takes its grantless tokens");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = open(&Target::Memory, Role::Writer).unwrap();
        run(&mut conn).unwrap();
        conn.execute("INSERT INTO authflow_migrations VALUES (99, 'future', 0)", []).unwrap();
        let err = run(&mut conn).unwrap_err().into_store("migration");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
