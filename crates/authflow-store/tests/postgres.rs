//! The behavioural suite against a real PostgreSQL server.
//!
//! Each test gets its own schema (`af_test_<random>`), connects with `search_path` set to it, migrates, and
//! drops the schema afterwards, pass or fail. The server comes from `AUTHFLOW_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). An unreachable server fails the tests: they never skip.
#![cfg(feature = "postgres")]

use authflow_store::postgres::PostgresStore;
use authflow_store::{open, OpenOptions};

authflow_store::store_suite!(authflow_store::fixtures::postgres());

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn open_url_and_migrations_are_idempotent() {
    block_on(async {
        let (schema, _, teardown) = authflow_store::fixtures::fresh_schema().await;
        let url = authflow_store::fixtures::postgres_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        // `options=-c search_path=<schema>`, URL-encoded.
        let url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
        let result = async {
            let store = open(&url, &OpenOptions { max_connections: 2, ..OpenOptions::default() }).await?;
            assert_eq!(store.backend(), "postgres");
            store.ping().await?;
            assert!(store.list_clients().await?.is_empty(), "the tables exist in the test schema");
            // Opening again migrates again: a no-op.
            let again = open(&url, &OpenOptions { max_connections: 2, ..OpenOptions::default() }).await?;
            again.ping().await?;
            let direct = PostgresStore::connect(&url, 2).await?;
            direct.migrate().await?;
            direct.migrate().await?;
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_one(direct.pool())
            .await
            .expect("count tables");
            assert_eq!(tables, 12, "eleven tables and sqlx's migration table, all in the test schema");
            direct.close().await;
            Ok::<_, authflow_store::StoreError>(())
        }
        .await;
        teardown.await;
        result.expect("open postgres:// and migrate twice");
    });
}
