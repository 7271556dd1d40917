//! Fresh, isolated stores for tests (feature `test-suite`): a new SQLite file or a new PostgreSQL schema
//! per test, removed afterwards, so tests run in parallel and leave nothing behind. Used by this crate's suite
//! and by the HTTP crates' integration tests.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "postgres")]
pub use self::postgres::*;
#[cfg(feature = "sqlite")]
pub use self::sqlite::*;

/// A name no other test (or test run) uses: 16 hex digits, for a schema or a Redis key prefix.
pub fn unique_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:016x}", h.finish())
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use crate::sqlite::SqliteStore;
    use crate::testsuite::Fixture;

    /// A migrated SQLite database in a new temporary directory (WAL mode, a real file), deleted on teardown.
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("authflow.db").display());
        let store = SqliteStore::connect(&url, 4).await.expect("connect to SQLite");
        store.migrate().await.expect("migrate");
        Fixture::new(store).with_teardown(async move { drop(dir) })
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::future::Future;
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::{Connection, Executor};

    use crate::postgres::PostgresStore;
    use crate::testsuite::Fixture;

    /// The server tests use unless `AUTHFLOW_TEST_POSTGRES_URL` names another.
    pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// The PostgreSQL server for tests.
    pub fn postgres_url() -> String {
        std::env::var("AUTHFLOW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
    }

    /// A schema name no other test (or test run) uses.
    fn schema_name() -> String {
        format!("af_test_{}", super::unique_name())
    }

    async fn admin() -> (PgConnection, PgConnectOptions) {
        let url = postgres_url();
        let options =
            PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("bad AUTHFLOW_TEST_POSTGRES_URL {url:?}: {e}"));
        match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options)).await {
            Ok(Ok(c)) => (c, options),
            Ok(Err(e)) => unreachable_server(&url, &e.to_string()),
            Err(_) => unreachable_server(&url, "no answer within 10 s"),
        }
    }

    fn unreachable_server(url: &str, why: &str) -> ! {
        panic!(
            "\n\nPostgreSQL is not reachable at {url}: {why}\n\
             These tests need a real server where they may create schemas. Start one (on Debian:\n    \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             as in .ci/run), or point AUTHFLOW_TEST_POSTGRES_URL at another server, e.g.\n    \
             AUTHFLOW_TEST_POSTGRES_URL=postgres://user:password@host:5432/db cargo test --workspace\n"
        )
    }

    /// Create a fresh schema on the test server; returns its name, connect options for the server, and a
    /// teardown that drops the schema.
    pub async fn fresh_schema() -> (String, PgConnectOptions, impl Future<Output = ()> + Send + 'static) {
        let (mut admin, options) = admin().await;
        let schema = schema_name();
        admin.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create the test schema");
        let teardown = {
            let schema = schema.clone();
            async move {
                if let Err(e) = admin.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await {
                    eprintln!("could not drop test schema {schema}: {e}");
                }
                let _ = admin.close().await;
            }
        };
        (schema, options, teardown)
    }

    /// A migrated store in a fresh schema of the real test server, dropped on teardown. Fails (never skips)
    /// when the server is unreachable.
    pub async fn postgres() -> Fixture {
        let (schema, options, teardown) = fresh_schema().await;
        let store = PostgresStore::connect_with(options.options([("search_path", schema.as_str())]), 4).await;
        let store = store.expect("connect to PostgreSQL with the test schema");
        store.migrate().await.expect("migrate");
        Fixture::new(store).with_teardown(teardown)
    }
}
