//! A token lookup in storage, the read behind every introspection (`cargo bench -p authflow-store --bench
//! lookup`): `find_access_token` on the memory store and on SQLite (a WAL file in a temporary directory, as
//! `authflow serve` opens it), for one hot token and for tokens drawn from 20 000 issued ones, and
//! `find_client`, the read behind client authentication when the client cache misses.
//!
//! SQLite reads run inline on the calling thread, so each measured call finishes without suspending; the
//! figure is the read itself, with no runtime hop.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use authflow_core::entropy::SeededEntropy;
use authflow_core::{Scope, SecretToken, TokenHash, TokenKind, UnixTime};
use authflow_store::sqlite::SqliteStore;
use authflow_store::testsuite::bare_client;
use authflow_store::{AccessToken, MemoryStore, Store};
use criterion::{criterion_group, criterion_main, Criterion};

/// Tokens issued before measuring.
const TOKENS: usize = 20_000;

/// Poll a future that must finish without waiting.
fn now_or_never<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a read suspended"),
    }
}

/// Issue [`TOKENS`] client_credentials tokens (no grant), as the token endpoint does; their hashes.
async fn issue(store: &dyn Store, now: UnixTime) -> Vec<TokenHash> {
    store.insert_client(&bare_client("bench-service")).await.expect("insert the client");
    let mut hashes = Vec::with_capacity(TOKENS);
    // Seeded: lookups need distinct tokens, not secret ones.
    let mut entropy = SeededEntropy::new(7);
    for i in 0..TOKENS {
        let issued_at = UnixTime::from_millis(now.as_millis() - (TOKENS - i) as u64);
        let token = SecretToken::generate(TokenKind::AccessToken, issued_at, &mut entropy);
        let access = AccessToken {
            token_hash: TokenHash::of(token.expose()),
            grant_id: None,
            client_id: "bench-service".into(),
            subject: None,
            scope: Scope::parse("notes:read").ok(),
            resources: vec!["https://mcp.example.com/mcp".into()],
            issued_at,
            expires_at: now + std::time::Duration::from_secs(600),
        };
        store.insert_access_token(&access).await.expect("issue a token");
        hashes.push(access.token_hash);
    }
    hashes
}

fn bench_store(c: &mut Criterion, name: &str, store: Arc<dyn Store>, runtime: &tokio::runtime::Runtime) {
    let now = UnixTime::from_system_time(std::time::SystemTime::now());
    let hashes = runtime.block_on(issue(store.as_ref(), now));
    let mut group = c.benchmark_group(format!("store_{name}"));
    let hot = hashes[TOKENS / 2];
    group.bench_function("find_access_token_hot", |b| {
        b.iter(|| {
            let found = now_or_never(store.find_access_token(black_box(&hot), now)).expect("read");
            assert!(found.is_some());
        })
    });
    let mut next = 0usize;
    group.bench_function("find_access_token_any_of_20k", |b| {
        b.iter(|| {
            // A stride coprime with TOKENS visits every token, never two neighbours in a row.
            next = (next + 7_919) % TOKENS;
            let found = now_or_never(store.find_access_token(black_box(&hashes[next]), now)).expect("read");
            assert!(found.is_some());
        })
    });
    group.bench_function("find_client", |b| {
        b.iter(|| {
            let found = now_or_never(store.find_client(black_box("bench-service"))).expect("read");
            assert!(found.is_some());
        })
    });
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    bench_store(c, "memory", Arc::new(MemoryStore::new()), &runtime);

    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("authflow.db").display());
    let sqlite = runtime.block_on(async {
        let store = SqliteStore::connect(&url, 4).await.expect("open SQLite");
        store.migrate().await.expect("migrate");
        store
    });
    bench_store(c, "sqlite", Arc::new(sqlite), &runtime);
}

criterion_group!(benches, lookups);
criterion_main!(benches);
