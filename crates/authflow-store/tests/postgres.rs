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

// TLS (rustls, WebPKI roots) is compiled in and sqlx's own URL parameters are honoured. The tests ask the
// server whether it offers TLS (`SHOW ssl`) and check what each `sslmode` must then do, so they hold against
// a server with TLS (Debian's PostgreSQL, with its self-signed "snakeoil" certificate) and one without (the
// `postgres` Docker image). Without TLS compiled in, every `sslmode` above `prefer` fails with sqlx's "TLS
// upgrade required by connect options but SQLx was built without TLS support enabled".

/// `url` with `param` appended to its query string (a later `sslmode` overrides an earlier one).
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// Open `url` without migrating, bounded so a misbehaving server cannot hang the test.
async fn open_quickly(url: &str) -> Result<std::sync::Arc<dyn authflow_store::Store>, authflow_store::StoreError> {
    let options = OpenOptions { migrate: false, max_connections: 2 };
    tokio::time::timeout(std::time::Duration::from_secs(10), open(url, &options)).await.expect("open answers promptly")
}

/// Connect to `url` and say whether this session is encrypted, and with which protocol.
async fn session_tls(url: &str) -> Option<String> {
    let store = tokio::time::timeout(std::time::Duration::from_secs(10), PostgresStore::connect(url, 1))
        .await
        .expect("connect answers promptly")
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let version: Option<String> =
        sqlx::query_scalar("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
            .fetch_optional(store.pool())
            .await
            .expect("read pg_stat_ssl");
    store.close().await;
    version
}

/// Whether the test server offers TLS, asked in clear.
async fn server_offers_tls(base: &str) -> bool {
    let store = PostgresStore::connect(&with_param(base, "sslmode=disable"), 1).await.expect("connect in clear");
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(store.pool()).await.expect("SHOW ssl");
    store.close().await;
    ssl == "on"
}

/// The error `open` gives for `url`, which must fail.
async fn open_error(url: &str) -> String {
    match open_quickly(url).await {
        Ok(_) => panic!("{url} connected; it must not"),
        Err(err) => err.to_string(),
    }
}

/// `sslmode=require` encrypts the session, or refuses a server without TLS; `disable` stays in clear and
/// `prefer` (sqlx's default) encrypts whenever the server can.
#[test]
fn sslmode_require_encrypts_or_refuses() {
    block_on(async {
        let base = authflow_store::fixtures::postgres_url();
        assert_eq!(session_tls(&with_param(&base, "sslmode=disable")).await, None, "disable: clear text");
        if server_offers_tls(&base).await {
            let version = session_tls(&with_param(&base, "sslmode=require")).await;
            assert!(matches!(version.as_deref(), Some("TLSv1.2" | "TLSv1.3")), "require: {version:?}");
            assert!(session_tls(&with_param(&base, "sslmode=prefer")).await.is_some(), "prefer: TLS when offered");
        } else {
            let err = open_error(&with_param(&base, "sslmode=require")).await;
            assert!(err.contains("server does not support TLS"), "require: {err}");
            assert_eq!(session_tls(&with_param(&base, "sslmode=prefer")).await, None, "prefer: falls back");
        }
    });
}

/// `verify-full` checks the chain and the name. The WebPKI roots never vouch for a test server, so it is
/// refused; with `sslrootcert=` naming the server's own self-signed certificate as a private CA the chain is
/// trusted and only the name is left to check: a name the certificate lacks is refused, one it carries
/// connects (Debian's snakeoil certificate names `localhost`).
///
/// Not `verify-ca`: in sqlx 0.8.6 under rustls ≥ 0.23.24 it checks the name as well (sqlx issue #3793).
#[test]
fn sslmode_verify_full_trusts_sslrootcert_and_checks_the_name() {
    block_on(async {
        let base = authflow_store::fixtures::postgres_url();
        if !server_offers_tls(&base).await {
            let url = with_param(&base, "sslmode=verify-full&sslrootcert=/nonexistent/private-ca.pem");
            let err = open_error(&url).await;
            assert!(err.contains("server does not support TLS"), "verify-full: {err}");
            return;
        }
        let err = open_error(&with_param(&base, "sslmode=verify-full")).await;
        assert!(err.contains("invalid peer certificate: UnknownIssuer"), "verify-full with WebPKI roots: {err}");

        // The server's own certificate, read through the server (the test role is a superuser).
        let store = PostgresStore::connect(&with_param(&base, "sslmode=disable"), 1).await.expect("connect in clear");
        let pem: String = sqlx::query_scalar("SELECT pg_read_file(current_setting('ssl_cert_file'))")
            .fetch_one(store.pool())
            .await
            .expect("read the server certificate");
        store.close().await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = dir.path().join("server-ca.pem");
        std::fs::write(&ca, pem).expect("write the certificate");
        let url = with_param(&base, &format!("sslmode=verify-full&sslrootcert={}", ca.display()));

        match open_quickly(&url).await {
            Ok(store) => store.ping().await.expect("the certificate names the host dialled"),
            Err(err) => {
                let err = err.to_string();
                assert!(err.contains("certificate not valid for name"), "the chain is trusted, the name is not: {err}");
                if err.contains("DnsName(\"localhost\")") {
                    let url = with_param(&url, "host=localhost");
                    assert!(session_tls(&url).await.is_some(), "{url}: verified and encrypted");
                }
            }
        }
    });
}
