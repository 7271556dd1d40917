//! The PostgreSQL backend: durable state shared by many replicas.
//!
//! Every operation that must be atomic is one conditional statement (`UPDATE … WHERE … RETURNING`,
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE`, a compare-and-set on a revision), or for refresh-token
//! rotation such a statement and an insert in one transaction, so the guarantees hold across any number
//! of connections and replicas at the default `READ COMMITTED` isolation. Purges from several replicas
//! take turns on an advisory lock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authflow_store::StoreError> {
//! use authflow_store::postgres::PostgresStore;
//! let store = PostgresStore::connect("postgres://authflow@db.internal/authflow", 16).await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use authflow_core::{TokenHash, UnixTime};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};

use crate::batch::{self, BatchOp, Batcher};
use crate::lease::{Connections, Lease};
use crate::model::AccessToken;
use crate::sql::{self, db_error};
use crate::{StoreError, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// While the database is away, requests fail after this long (503 + Retry-After) instead of queueing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads run their prepared statements' generic plans, made once per connection and period (see `lease`),
/// never a plan per run. Every read is a lookup by a key, which a generic plan serves as well as a custom
/// one. PostgreSQL would pick the generic plan by itself for all but introspection's batched lookup,
/// whose generic estimate of ten rows per array of hashes looks dearer than the custom plan's count: there,
/// planning at each run cost 120–150 µs against 35 µs for running the plan.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// The advisory lock purges take turns on ("afpurge!").
const PURGE_LOCK: i64 = 0x6166_7075_7267_6521;

/// Storage in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    /// Writes and transactions.
    pool: PgPool,
    /// Point reads (see `lease`): one round trip each, where sqlx's pool adds a ping.
    reader: Arc<Connections>,
    /// Writes, on `pool`'s connections: sqlx's check on release flushes the rollback of an abandoned
    /// transaction at once, so its row locks are not held until the connection's next use.
    writer: Arc<Connections>,
    /// Introspection's lookups, many per statement under load (see `batch`).
    access_tokens: Arc<Batcher<FindAccessTokens>>,
    /// Access-token issuances, many per statement and commit under load.
    issuances: Arc<Batcher<InsertAccessTokens>>,
}

impl PostgresStore {
    /// Connect to the database a URL names (`postgres://user:password@host:port/database?…`), with up to
    /// `max_connections` connections: half for reads, half for writes (at least one each).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::unavailable)?;
        Self::connect_with(options, max_connections).await
    }

    /// Connect with explicit options, e.g. to set a `search_path`:
    /// `options.options([("search_path", "authflow")])`.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> StoreResult<Self> {
        let readers = (max_connections / 2).max(1);
        let reader = Arc::new(Connections::new(options.clone(), readers, ACQUIRE_TIMEOUT).setup(GENERIC_PLANS));
        let writers = max_connections.saturating_sub(readers).max(1);
        let pool = PgPoolOptions::new()
            .max_connections(writers)
            // While the database is away, requests fail fast (503 + Retry-After) instead of queueing for
            // sqlx's default 30 s; the pool reconnects by itself when it is back.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx already pings every connection as it returns to the pool (closing one that fails); a
            // second ping at each checkout would add a round trip to every query.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::unavailable)?;
        let writer = Arc::new(Connections::shared(pool.clone(), options));
        // A batch holds a reader; a few of them at once leave the other readers to everything else.
        let access_tokens = Batcher::new(FindAccessTokens(reader.clone()), (readers as usize / 4).clamp(1, 2), 64);
        // Each batch is a commit, which waits for the WAL to reach the disk: a few at once keep the disk
        // busy while the other writers serve everything else.
        let issuances = Batcher::new(InsertAccessTokens(writer.clone()), (writers as usize / 2).clamp(1, 4), 64);
        Ok(PostgresStore { pool, reader, writer, access_tokens, issuances })
    }

    /// The connection pool, for queries of your own next to authflow's tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending schema migrations (idempotent; `migrations/postgres` in this crate). Replicas starting
    /// together are safe: the migrator holds an advisory lock.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::unavailable)
    }

    /// Close every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.reader.close().await;
    }

    async fn read(&self) -> StoreResult<Lease<'_>> {
        self.reader.lease().await.map_err(db_error("connection"))
    }

    async fn write(&self) -> StoreResult<Lease<'_>> {
        self.writer.lease().await.map_err(db_error("connection"))
    }

    async fn begin(conn: &mut PgConnection) -> StoreResult<Transaction<'_, Postgres>> {
        conn.begin().await.map_err(db_error("transaction"))
    }

    /// A transaction holding the purge lock until it ends, so concurrent purges run one after the other
    /// instead of deadlocking on each other's cascades.
    async fn begin_purge(conn: &mut PgConnection) -> StoreResult<Transaction<'_, Postgres>> {
        let mut tx = Self::begin(conn).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PURGE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error("purge"))?;
        Ok(tx)
    }

    async fn find_access_token_batched(&self, hash: &TokenHash, now: UnixTime) -> StoreResult<Option<AccessToken>> {
        self.access_tokens.call((*hash, now)).await
    }

    async fn insert_access_token_batched(&self, token: &AccessToken) -> StoreResult<()> {
        self.issuances.call(token.clone()).await
    }
}

crate::sql::impl_sql_store!(PostgresStore, Postgres, "postgres");

/// `FIND_ACCESS_TOKEN` for many hashes at once: the unrevoked tokens of live grants among `$1`; each request
/// then applies its own clock to their expiry.
///
/// The expiry is applied here rather than in the statement, so that no plan has an index on it to choose:
/// a generic plan made while the table was small scanned the expiry index, matching every live token,
/// then filtered by hash, 10 ms per batch once ~12 000 tokens had been issued. A plan made while the table
/// was small may still scan it whole, but lives one re-preparation period at most (see `lease`).
const FIND_ACCESS_TOKENS: &str = "SELECT a.token_hash AS token_hash, a.grant_id AS grant_id, \
     a.client_id AS client_id, a.subject AS subject, a.scope AS scope, a.resources AS resources, \
     a.issued_at AS issued_at, a.expires_at AS expires_at \
     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id \
     WHERE a.token_hash = ANY($1) AND a.revoked_at IS NULL AND g.revoked_at IS NULL \
     AND (a.grant_id IS NULL OR g.id IS NOT NULL)";

/// Introspection's lookup, batched: each statement and round trip serves every lookup waiting for one.
#[derive(Debug)]
struct FindAccessTokens(Arc<Connections>);

impl BatchOp for FindAccessTokens {
    type Input = (TokenHash, UnixTime);
    type Output = Option<AccessToken>;

    async fn run(&self, inputs: Vec<(TokenHash, UnixTime)>) -> Vec<StoreResult<Option<AccessToken>>> {
        let hashes: Vec<&[u8]> = inputs.iter().map(|(hash, _)| sql::hash(hash)).collect();
        let found = async {
            let mut db = self.0.lease().await.map_err(db_error("connection"))?;
            let rows = sqlx::query(FIND_ACCESS_TOKENS).bind(&hashes).fetch_all(db.conn()).await;
            let rows = db.settle(rows).map_err(db_error("access token"))?;
            rows.iter().map(sql::access_token).collect::<StoreResult<Vec<_>>>()
        }
        .await;
        match found {
            Ok(tokens) => inputs
                .iter()
                .map(|(hash, now)| Ok(tokens.iter().find(|t| t.token_hash == *hash && t.expires_at > *now).cloned()))
                .collect(),
            Err(e) => batch::each(e, inputs.len()),
        }
    }
}

/// New access tokens in one statement: one round trip and one commit, atomic as any statement; one array
/// per column, the rows in order.
const INSERT_ACCESS_TOKENS: &str = "INSERT INTO access_tokens \
     (token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at) \
     SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], \
     $8::int8[])";

/// Issuance, batched: the tokens of every request waiting go in one statement, so one commit (one wait for
/// the WAL's flush) serves them all. A statement the database refuses (a hash stored twice, a client or
/// grant deleted meanwhile, a value it cannot take) is split in halves until each token at fault fails
/// alone; everything else lands.
#[derive(Debug)]
struct InsertAccessTokens(Arc<Connections>);

impl BatchOp for InsertAccessTokens {
    type Input = AccessToken;
    type Output = ();

    async fn run(&self, inputs: Vec<AccessToken>) -> Vec<StoreResult<()>> {
        let mut results = Vec::with_capacity(inputs.len());
        self.write_or_split(&inputs, &mut results).await;
        results
    }
}

impl InsertAccessTokens {
    /// Write `tokens`, pushing one result per token. A refusal of some rows splits them (at most ~2 log n
    /// more statements for one token at fault, where one by one would take n); any other failure (the
    /// connection, the pool, a database that is read-only or shutting down) is every token's answer, with no
    /// further tries: a split would only repeat it some 2n times.
    fn write_or_split<'a>(
        &'a self,
        tokens: &'a [AccessToken],
        results: &'a mut Vec<StoreResult<()>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            match self.write(tokens).await {
                Ok(()) => results.extend(tokens.iter().map(|_| Ok(()))),
                Err(e) if tokens.len() > 1 && refuses_rows(&e) => {
                    let (left, right) = tokens.split_at(tokens.len() / 2);
                    self.write_or_split(left, results).await;
                    self.write_or_split(right, results).await;
                }
                Err(e) => results.extend(batch::each(db_error("access token")(e), tokens.len())),
            }
        })
    }

    async fn write(&self, tokens: &[AccessToken]) -> Result<(), sqlx::Error> {
        let column = |f: fn(&AccessToken) -> Option<&str>| tokens.iter().map(f).collect::<Vec<_>>();
        let time = |f: fn(&AccessToken) -> UnixTime| tokens.iter().map(|t| sql::millis(f(t))).collect::<Vec<_>>();
        let mut db = self.0.lease().await?;
        let done = sqlx::query(INSERT_ACCESS_TOKENS)
            .bind(tokens.iter().map(|t| sql::hash(&t.token_hash)).collect::<Vec<_>>())
            .bind(column(|t| t.grant_id.as_deref()))
            .bind(tokens.iter().map(|t| t.client_id.as_str()).collect::<Vec<_>>())
            .bind(column(|t| t.subject.as_deref()))
            .bind(tokens.iter().map(|t| sql::scope(&t.scope)).collect::<Vec<_>>())
            .bind(tokens.iter().map(|t| sql::resources(&t.resources)).collect::<Vec<_>>())
            .bind(time(|t| t.issued_at))
            .bind(time(|t| t.expires_at))
            .execute(db.conn())
            .await;
        db.settle(done).map(drop)
    }
}

/// Whether the database refused the statement for what some rows hold (SQLSTATE class 22, a data exception,
/// or 23, a constraint violation), so that the rows' other halves may still land.
fn refuses_rows(e: &sqlx::Error) -> bool {
    let class = match e {
        sqlx::Error::Database(d) => d.code(),
        _ => None,
    };
    class.is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fresh_schema;
    use crate::TokenStore;

    /// A store (not migrated) on a schema of its own, which `teardown` drops.
    async fn store_in_fresh_schema(connections: u32) -> (PostgresStore, impl Future<Output = ()>) {
        let (schema, options, teardown) = fresh_schema().await;
        let store = PostgresStore::connect_with(options.options([("search_path", schema.as_str())]), connections);
        (store.await.unwrap(), teardown)
    }

    #[tokio::test]
    async fn introspection_lookups_run_a_generic_plan() {
        // One reader: the lookups' connection is the one inspected afterwards.
        let (store, teardown) = store_in_fresh_schema(2).await;
        store.migrate().await.unwrap();
        for i in 0..8u8 {
            let hash = TokenHash::of(&format!("unknown-{i}"));
            assert_eq!(store.find_access_token(&hash, UnixTime::from_secs(1)).await.unwrap(), None);
        }
        let mut db = store.reader.lease().await.unwrap();
        let plans: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%= ANY($1)%'",
        )
        .fetch_one(db.conn())
        .await;
        // PostgreSQL alone would plan each run (custom plans), the generic estimate looking dearer.
        assert_eq!(db.settle(plans).unwrap(), (8, 0));
        store.close().await;
        teardown.await;
    }

    /// The multi-row statement itself (concurrent calls only may reach it): every token of a good batch
    /// lands; in a batch with tokens at fault, the others still land and each bad one fails alone, with its
    /// own error.
    #[tokio::test]
    async fn issuances_written_together_or_one_by_one() {
        use crate::testsuite::{bare_client, NOW};
        use crate::{ClientStore, Grant};
        let (store, teardown) = store_in_fresh_schema(4).await;
        store.migrate().await.unwrap();
        store.insert_client(&bare_client("app")).await.unwrap();
        let later = NOW + Duration::from_secs(3600);
        let grant = Grant {
            id: "g".into(),
            client_id: "app".into(),
            subject: None,
            created_at: NOW,
            expires_at: later,
            revoked_at: None,
        };
        store.insert_grant(&grant).await.unwrap();
        let token = |label: &str, grant_id: Option<&str>, client_id: &str| AccessToken {
            token_hash: TokenHash::of(label),
            grant_id: grant_id.map(Into::into),
            client_id: client_id.into(),
            subject: None,
            scope: None,
            resources: vec!["https://mcp.example/mcp".into()],
            issued_at: NOW,
            expires_at: later,
        };
        let op = InsertAccessTokens(store.writer.clone());
        let good = vec![token("at-1", None, "app"), token("at-2", Some("g"), "app"), token("at-3", None, "app")];
        assert!(op.run(good.clone()).await.iter().all(Result::is_ok));
        let mixed = vec![
            token("at-4", None, "app"),
            token("at-1", None, "app"),          // a token hash stored already
            token("at-6", None, "ghost"),        // a client that does not exist
            token("at-7", Some("ghost"), "app"), // nor does this grant
            token("at-8", Some("g"), "app"),
        ];
        let results = op.run(mixed.clone()).await;
        assert!(results[0].is_ok() && results[4].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Conflict(_))), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::Corrupt(_))), "{results:?}");
        assert!(matches!(results[3], Err(StoreError::Corrupt(_))), "{results:?}");
        for token in good.iter().chain([&mixed[0], &mixed[4]]) {
            assert_eq!(store.find_access_token(&token.token_hash, NOW).await.unwrap().as_ref(), Some(token));
        }
        for refused in &mixed[2..4] {
            assert_eq!(store.find_access_token(&refused.token_hash, NOW).await.unwrap(), None);
        }
        // Two tokens of one batch with the same hash: the first lands, as one after the other would.
        let twice = vec![token("at-9", None, "app"), token("at-9", Some("g"), "app")];
        let results = op.run(twice.clone()).await;
        assert!(results[0].is_ok() && matches!(results[1], Err(StoreError::Conflict(_))), "{results:?}");
        assert_eq!(store.find_access_token(&twice[0].token_hash, NOW).await.unwrap().as_ref(), Some(&twice[0]));
        store.close().await;
        teardown.await;
    }

    /// A batch is split only when the database refused rows: any other refusal (here a trigger's `57014`,
    /// a statement cancelled) is every token's answer after one statement, where a split would repeat it
    /// fifteen times for eight tokens. A sequence counts the statements, as its increments outlive rollbacks.
    #[tokio::test]
    async fn only_refused_rows_split_a_batch() {
        use crate::testsuite::{bare_client, NOW};
        use crate::ClientStore;
        let (store, teardown) = store_in_fresh_schema(2).await;
        store.migrate().await.unwrap();
        store.insert_client(&bare_client("app")).await.unwrap();
        let refuse_with = |code: &str| {
            format!(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 PERFORM nextval('attempts'); RAISE EXCEPTION 'refused' USING ERRCODE = '{code}'; END $$"
            )
        };
        let run_sql = |sql: String| {
            let writer = store.writer.clone();
            async move {
                let mut db = writer.lease().await.unwrap();
                let done = sqlx::raw_sql(&sql).execute(db.conn()).await;
                db.settle(done).unwrap();
            }
        };
        let attempts = || async {
            let mut db = store.writer.lease().await.unwrap();
            let n: Result<(i64,), _> =
                sqlx::query_as("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM attempts")
                    .fetch_one(db.conn())
                    .await;
            db.settle(n).unwrap().0
        };
        run_sql("CREATE SEQUENCE attempts".into()).await;
        run_sql(refuse_with("57014")).await;
        run_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON access_tokens FOR EACH STATEMENT EXECUTE FUNCTION refuse()".into(),
        )
        .await;
        let tokens: Vec<AccessToken> = (0..8)
            .map(|i| AccessToken {
                token_hash: TokenHash::of(&format!("at-{i}")),
                grant_id: None,
                client_id: "app".into(),
                subject: None,
                scope: None,
                resources: vec![],
                issued_at: NOW,
                expires_at: NOW + Duration::from_secs(60),
            })
            .collect();
        let op = InsertAccessTokens(store.writer.clone());
        assert_eq!(attempts().await, 0);

        let results = op.run(tokens.clone()).await;
        assert!(results.iter().all(|r| matches!(r, Err(StoreError::Unavailable(_)))), "{results:?}");
        assert_eq!(attempts().await, 1, "one statement, no split");

        // The same trigger refusing with a check violation (`23514`) is about rows: the batch is split down to
        // single tokens, 1 + 2 + 4 + 8 statements.
        run_sql(refuse_with("23514")).await;
        let results = op.run(tokens.clone()).await;
        assert!(results.iter().all(|r| matches!(r, Err(StoreError::Corrupt(_)))), "{results:?}");
        assert_eq!(attempts().await, 1 + 15);
        // So is a data exception (`22023`): split too, and no use trying again.
        run_sql(refuse_with("22023")).await;
        let results = op.run(tokens).await;
        assert!(results.iter().all(|r| matches!(r, Err(StoreError::Corrupt(_)))), "{results:?}");
        assert_eq!(attempts().await, 1 + 15 + 15);
        store.close().await;
        teardown.await;
    }

    /// A database at version 4 (tokens all had a grant; there is no version 5 here) upgrades to 6 with its rows
    /// kept; then a token may stand without a grant but not name one that does not exist, the grant index
    /// leaves the grantless out, and deleting a grant or a client still takes their tokens.
    #[tokio::test]
    async fn version_6_upgrades_a_populated_database() {
        let (store, teardown) = store_in_fresh_schema(2).await;
        let before_6 = MIGRATOR.migrations.iter().filter(|m| m.version < 6).cloned().collect::<Vec<_>>();
        assert_eq!(before_6.last().map(|m| m.version), Some(4));
        Migrator { migrations: before_6.into(), ..Migrator::DEFAULT }.run(store.pool()).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO clients (id, metadata, origin, created_at) VALUES ('c', '{}', 'static', 1);
             INSERT INTO grants (id, client_id, subject, created_at, expires_at) VALUES ('g', 'c', 'alice', 1, 9);
             INSERT INTO access_tokens (token_hash, grant_id, client_id, subject, resources, issued_at, expires_at)
                 VALUES (decode(repeat('00', 32), 'hex'), 'g', 'c', 'alice', '[]', 1, 5);
             INSERT INTO refresh_tokens (token_hash, grant_id, client_id, resources, issued_at, expires_at, rotated_at)
                 VALUES (decode(repeat('01', 32), 'hex'), 'g', 'c', '[]', 1, 9, 3);",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let alone = "INSERT INTO access_tokens (token_hash, client_id, resources, issued_at, expires_at) \
                     VALUES (decode(repeat('02', 32), 'hex'), 'c', '[]', 2, 6)";
        let sqlstate = |done: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| match done {
            Err(sqlx::Error::Database(d)) => d.code().map(|c| c.into_owned()),
            other => panic!("a refusal by the database, not {other:?}"),
        };
        // Version 4 wants a grant (23502, a NULL where it may not be).
        assert_eq!(sqlstate(sqlx::query(alone).execute(store.pool()).await).as_deref(), Some("23502"));

        store.migrate().await.unwrap();
        let pool = store.pool();
        let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
        assert_eq!(count("SELECT count(*) FROM access_tokens WHERE grant_id = 'g' AND subject = 'alice'").await, 1);
        assert_eq!(count("SELECT count(*) FROM refresh_tokens WHERE rotated_at = 3").await, 1);
        sqlx::query(alone).execute(store.pool()).await.unwrap();
        let dangling = "INSERT INTO access_tokens (token_hash, grant_id, client_id, resources, issued_at, expires_at) \
                        VALUES (decode(repeat('03', 32), 'hex'), 'nowhere', 'c', '[]', 2, 6)";
        assert_eq!(sqlstate(sqlx::query(dangling).execute(store.pool()).await).as_deref(), Some("23503"));
        let index: String = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'access_tokens_grant'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert!(index.contains("WHERE (grant_id IS NOT NULL)"), "{index}");
        // Through the store: the upgraded token is found with its grant, the new one without.
        let old = store.find_access_token(&TokenHash::from_bytes([0; 32]), UnixTime::from_millis(2)).await.unwrap();
        assert_eq!(old.and_then(|t| t.grant_id).as_deref(), Some("g"));
        let new = store.find_access_token(&TokenHash::from_bytes([2; 32]), UnixTime::from_millis(3)).await.unwrap();
        assert_eq!(new.map(|t| t.grant_id), Some(None));

        sqlx::query("DELETE FROM grants WHERE id = 'g'").execute(store.pool()).await.unwrap();
        assert_eq!(
            count("SELECT (SELECT count(*) FROM access_tokens) + (SELECT count(*) FROM refresh_tokens)").await,
            1
        );
        sqlx::query("DELETE FROM clients WHERE id = 'c'").execute(store.pool()).await.unwrap();
        assert_eq!(count("SELECT count(*) FROM access_tokens").await, 0, "the client took its grantless token");
        store.close().await;
        teardown.await;
    }
}
