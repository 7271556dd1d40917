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
use crate::model::{AccessToken, Grant};
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
    /// client_credentials issuances, many per statement and commit under load.
    issuances: Arc<Batcher<InsertGrantsWithAccessTokens>>,
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
        let issuances =
            Batcher::new(InsertGrantsWithAccessTokens(writer.clone()), (writers as usize / 2).clamp(1, 4), 64);
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

    async fn insert_grant_with_access_token_batched(&self, grant: &Grant, token: &AccessToken) -> StoreResult<()> {
        self.issuances.call((grant.clone(), token.clone())).await
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
     FROM access_tokens a JOIN grants g ON g.id = a.grant_id \
     WHERE a.token_hash = ANY($1) AND a.revoked_at IS NULL AND g.revoked_at IS NULL";

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

/// New grants, each with its first access token, in one statement: one round trip and one commit, atomic
/// as any statement; one array per column, the rows in order. The tokens' foreign-key checks run at the
/// statement's end, so they see the grants.
const INSERT_GRANTS_WITH_ACCESS_TOKENS: &str = "WITH new_grants AS (INSERT INTO grants \
     (id, client_id, subject, created_at, expires_at, revoked_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[])) \
     INSERT INTO access_tokens (token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at) \
     SELECT * FROM UNNEST($7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], \
     $14::int8[])";

/// client_credentials issuance, batched: the new grants and their tokens of every request waiting go in one
/// statement, so one commit (one wait for the WAL's flush) serves them all. A statement the database refuses
/// (a hash or grant id stored twice, a client deleted meanwhile, a value it cannot take) is split in halves
/// until each pair at fault fails alone; everything else lands.
#[derive(Debug)]
struct InsertGrantsWithAccessTokens(Arc<Connections>);

impl BatchOp for InsertGrantsWithAccessTokens {
    type Input = (Grant, AccessToken);
    type Output = ();

    async fn run(&self, inputs: Vec<(Grant, AccessToken)>) -> Vec<StoreResult<()>> {
        let mut results = Vec::with_capacity(inputs.len());
        self.write_or_split(&inputs, &mut results).await;
        results
    }
}

impl InsertGrantsWithAccessTokens {
    /// Write `pairs`, pushing one result per pair. A refusal by the database splits them (at most ~2 log n
    /// more statements for one pair at fault, where one by one would take n); any other failure (the
    /// connection, the pool) is every pair's answer, with no further tries.
    fn write_or_split<'a>(
        &'a self,
        pairs: &'a [(Grant, AccessToken)],
        results: &'a mut Vec<StoreResult<()>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            match self.write(pairs).await {
                Ok(()) => results.extend(pairs.iter().map(|_| Ok(()))),
                Err(sqlx::Error::Database(_)) if pairs.len() > 1 => {
                    let (left, right) = pairs.split_at(pairs.len() / 2);
                    self.write_or_split(left, results).await;
                    self.write_or_split(right, results).await;
                }
                Err(e) => results.extend(batch::each(db_error("grant or access token")(e), pairs.len())),
            }
        })
    }

    async fn write(&self, pairs: &[(Grant, AccessToken)]) -> Result<(), sqlx::Error> {
        type Pair = (Grant, AccessToken);
        let text = |f: fn(&Pair) -> &str| pairs.iter().map(f).collect::<Vec<_>>();
        let maybe = |f: fn(&Pair) -> Option<&str>| pairs.iter().map(f).collect::<Vec<_>>();
        let time = |f: fn(&Pair) -> Option<i64>| pairs.iter().map(f).collect::<Vec<_>>();
        let mut db = self.0.lease().await?;
        let done = sqlx::query(INSERT_GRANTS_WITH_ACCESS_TOKENS)
            .bind(text(|(g, _)| &g.id))
            .bind(text(|(g, _)| &g.client_id))
            .bind(maybe(|(g, _)| g.subject.as_deref()))
            .bind(time(|(g, _)| Some(sql::millis(g.created_at))))
            .bind(time(|(g, _)| Some(sql::millis(g.expires_at))))
            .bind(time(|(g, _)| sql::opt_millis(g.revoked_at)))
            .bind(pairs.iter().map(|(_, t)| sql::hash(&t.token_hash)).collect::<Vec<_>>())
            .bind(text(|(_, t)| &t.grant_id))
            .bind(text(|(_, t)| &t.client_id))
            .bind(maybe(|(_, t)| t.subject.as_deref()))
            .bind(pairs.iter().map(|(_, t)| sql::scope(&t.scope)).collect::<Vec<_>>())
            .bind(pairs.iter().map(|(_, t)| sql::resources(&t.resources)).collect::<Vec<_>>())
            .bind(time(|(_, t)| Some(sql::millis(t.issued_at))))
            .bind(time(|(_, t)| Some(sql::millis(t.expires_at))))
            .execute(db.conn())
            .await;
        db.settle(done).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fresh_schema;
    use crate::TokenStore;

    #[tokio::test]
    async fn introspection_lookups_run_a_generic_plan() {
        let (schema, options, teardown) = fresh_schema().await;
        // One reader: the lookups' connection is the one inspected afterwards.
        let store = PostgresStore::connect_with(options.options([("search_path", schema.as_str())]), 2).await.unwrap();
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

    /// The multi-row statement itself (concurrent calls only may reach it): every pair of a good batch lands;
    /// in a batch with pairs at fault, the others still land and each bad one fails alone, with its own error.
    #[tokio::test]
    async fn issuances_written_together_or_one_by_one() {
        use crate::testsuite::{bare_client, NOW};
        use crate::ClientStore;
        let (schema, options, teardown) = fresh_schema().await;
        let store = PostgresStore::connect_with(options.options([("search_path", schema.as_str())]), 4).await.unwrap();
        store.migrate().await.unwrap();
        store.insert_client(&bare_client("app")).await.unwrap();
        let later = NOW + Duration::from_secs(3600);
        let pair = |grant_id: &str, client_id: &str, label: &str| {
            let grant = Grant {
                id: grant_id.into(),
                client_id: client_id.into(),
                subject: None,
                created_at: NOW,
                expires_at: later,
                revoked_at: None,
            };
            let token = AccessToken {
                token_hash: TokenHash::of(label),
                grant_id: grant_id.into(),
                client_id: client_id.into(),
                subject: None,
                scope: None,
                resources: vec!["https://mcp.example/mcp".into()],
                issued_at: NOW,
                expires_at: later,
            };
            (grant, token)
        };
        let op = InsertGrantsWithAccessTokens(store.writer.clone());
        let good = vec![pair("g-1", "app", "at-1"), pair("g-2", "app", "at-2"), pair("g-3", "app", "at-3")];
        assert!(op.run(good.clone()).await.iter().all(Result::is_ok));
        let mixed = vec![
            pair("g-4", "app", "at-4"),
            pair("g-5", "app", "at-1"),   // a token hash stored already
            pair("g-6", "ghost", "at-6"), // a client that does not exist
            pair("g-7", "app", "at-7"),
        ];
        let results = op.run(mixed.clone()).await;
        assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Conflict(_))), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::Corrupt(_))), "{results:?}");
        for (grant, token) in good.iter().chain([&mixed[0], &mixed[3]]) {
            assert_eq!(store.find_access_token(&token.token_hash, NOW).await.unwrap().as_ref(), Some(token));
            assert_eq!(store.find_grant(&grant.id).await.unwrap().as_ref(), Some(grant));
        }
        for refused in ["g-5", "g-6"] {
            assert_eq!(store.find_grant(refused).await.unwrap(), None, "{refused} left without its token");
        }
        // Two pairs of one batch with the same hash: the first lands, as one after the other would.
        let twice = vec![pair("g-8", "app", "at-8"), pair("g-9", "app", "at-8")];
        let results = op.run(twice.clone()).await;
        assert!(results[0].is_ok() && matches!(results[1], Err(StoreError::Conflict(_))), "{results:?}");
        assert_eq!(store.find_access_token(&twice[0].1.token_hash, NOW).await.unwrap().as_ref(), Some(&twice[0].1));
        assert_eq!(store.find_grant("g-9").await.unwrap(), None);
        store.close().await;
        teardown.await;
    }
}
