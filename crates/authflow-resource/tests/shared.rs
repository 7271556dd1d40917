//! What replicas of one MCP server share through the real Redis (`AUTHFLOW_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): introspection verdicts and friction states. Each test works under its own key
//! prefix and deletes it afterwards; an unreachable Redis fails the tests, it never skips them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use authflow_core::friction::{Call, FrictionConfig, Level};
use authflow_core::ClientAuthMethod;
use authflow_resource::clock::ManualClock;
use authflow_resource::{FrictionController, IntrospectionVerifier, TokenVerifier, VerifiedToken, VerifyError};
use authflow_store::redis::RedisShared;
use authflow_store::{SharedMap, StoreError, StoreResult, Swap};
use common::{dev_http, As, START};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const OTHER: &str = "https://other.example.com/mcp";

async fn redis() -> Arc<RedisShared> {
    let url = std::env::var("AUTHFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("authflow-test:{}:", authflow_store::fixtures::unique_name());
    let shared = RedisShared::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} does not answer ({e}); start it or set AUTHFLOW_TEST_REDIS_URL"));
    Arc::new(shared)
}

/// Stands in for a Redis that went away: every operation fails as the Redis store does when it cannot
/// reach the server. (The Redis store's own reconnection is tested against a real server it stops, in
/// `crates/authflow/tests/faults.rs`; here only the toolkit's reaction matters.)
#[derive(Debug)]
struct Unreachable;

fn down<T>() -> StoreResult<T> {
    Err(StoreError::unavailable(std::io::Error::other("Redis is down")))
}

#[async_trait::async_trait]
impl SharedMap for Unreachable {
    async fn get(&self, _: &str) -> StoreResult<Option<Vec<u8>>> {
        down()
    }
    async fn put(&self, _: &str, _: &[u8], _: Duration) -> StoreResult<()> {
        down()
    }
    async fn remove(&self, _: &str) -> StoreResult<()> {
        down()
    }
    async fn compare_and_swap(&self, _: &str, _: Option<&[u8]>, _: &[u8], _: Duration) -> StoreResult<Swap> {
        down()
    }
    async fn scan(&self, _: &str, _: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        down()
    }
}

fn replica(a: &As, resource: &str, rs: &(String, String), map: Arc<dyn SharedMap>) -> IntrospectionVerifier {
    IntrospectionVerifier::builder(a.url("/introspect").parse().unwrap(), resource)
        .client_secret_basic(&rs.0, &rs.1)
        .issuer(a.base.as_str())
        .http_client(dev_http())
        .clock(a.clock.clone())
        .shared_cache(map)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_introspection_verdicts() {
    let a = As::start().await;
    let service = a.service_client().await;
    let rs = a.resource_server(ClientAuthMethod::ClientSecretBasic, RESOURCE).await;
    let redis = redis().await;
    let (one, two) = (replica(&a, RESOURCE, &rs, redis.clone()), replica(&a, RESOURCE, &rs, redis.clone()));

    let token = a.token(&service, "notes:read", RESOURCE).await;
    let first = one.verify(&token).await.unwrap();
    assert_eq!((one.stats().introspections, one.stats().shared_hits), (1, 0));
    let second = two.verify(&token).await.unwrap();
    assert_eq!(second, first, "the same verified token on the replica that never asked");
    assert_eq!((two.stats().introspections, two.stats().shared_hits), (0, 1));
    two.verify(&token).await.unwrap();
    assert_eq!(two.stats().local_hits, 1, "then from its own cache");

    // Refusals are shared too.
    let garbage = "af_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(one.verify(garbage).await, Err(VerifyError::invalid("the token is not active")));
    assert_eq!(two.verify(garbage).await, Err(VerifyError::invalid("the token is not active")));
    assert_eq!((two.stats().introspections, two.stats().shared_hits), (0, 2));

    // A verifier for another resource never reads these verdicts: it asks, and the audience refuses.
    let rs_other = a.resource_server(ClientAuthMethod::ClientSecretBasic, OTHER).await;
    let other = replica(&a, OTHER, &rs_other, redis.clone());
    assert!(other.verify(&token).await.is_err());
    assert_eq!((other.stats().introspections, other.stats().shared_hits), (1, 0));

    // Neither the token nor anything that reveals it is stored: keys and values hold only its digest.
    let stored = redis.scan("", 100).await.unwrap();
    assert!(stored.len() >= 2, "{stored:?}");
    for (key, value) in &stored {
        assert!(!key.contains(&token) && !String::from_utf8_lossy(value).contains(&token), "{key}");
    }

    // Revoked and evicted on one replica: gone from the shared cache, so a fresh replica asks again.
    a.revoke(&service, &token).await;
    one.evict(&token).await;
    let three = replica(&a, RESOURCE, &rs, redis.clone());
    assert_eq!(three.verify(&token).await, Err(VerifyError::invalid("the token is not active")));
    assert_eq!((three.stats().introspections, three.stats().shared_hits), (1, 0));
    redis.delete_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shared_cache_is_skipped_not_fatal() {
    let a = As::start().await;
    let service = a.service_client().await;
    let rs = a.resource_server(ClientAuthMethod::ClientSecretBasic, RESOURCE).await;
    let verifier = replica(&a, RESOURCE, &rs, Arc::new(Unreachable));
    let token = a.token(&service, "notes:read", RESOURCE).await;
    verifier.verify(&token).await.expect("introspection still answers");
    verifier.verify(&token).await.unwrap();
    let stats = verifier.stats();
    assert_eq!((stats.introspections, stats.local_hits, stats.shared_errors), (1, 1, 2), "{stats:?}");
}

fn friction_config() -> FrictionConfig {
    FrictionConfig {
        window_size: 20,
        warmup_calls: 5,
        max_delay_ms: 0,
        tools: [("delete_note".to_owned(), 0.1)].into(),
        ..FrictionConfig::default()
    }
}

fn alice() -> VerifiedToken {
    VerifiedToken::new("alice").with_client_id("app")
}

/// A client alternating between two replicas meets exactly the friction one process would give it.
#[tokio::test]
async fn replicas_apply_friction_as_one() {
    let redis = redis().await;
    let clock = ManualClock::new(START);
    let single = FrictionController::new(friction_config()).unwrap().with_clock(clock.clone());
    let replicas: Vec<FrictionController> = (0..2)
        .map(|_| {
            FrictionController::new(friction_config()).unwrap().with_clock(clock.clone()).shared_state(redis.clone())
        })
        .collect();
    let token = alice();
    let mut blocked = 0;
    for n in 0..120usize {
        clock.advance(Duration::from_millis(300));
        let call = Call::new(if n % 3 == 0 { "delete_note" } else { "list_notes" });
        let expected = single.check_token(&token, call).await.unwrap();
        let got = replicas[n % 2].check_token(&token, call).await.unwrap();
        assert_eq!(
            (got.level, got.allowed, got.delay, got.ema, got.cost),
            (expected.level, expected.allowed, expected.delay, expected.ema, expected.cost),
            "call {n}"
        );
        blocked += usize::from(!got.allowed);
    }
    assert!(blocked > 0, "a third of the calls against a 10 % target gets blocked at some point");
    for r in &replicas {
        let status = r.status_of(&token).await.unwrap();
        assert_eq!(status, single.status_of(&token).await.unwrap(), "every replica shows the shared state");
        assert_eq!(status.calls, 120);
        assert_eq!(status.tools[0].level, Level::Blocked);
    }
    redis.delete_all().await.unwrap();
}

/// Two replicas checking the same client at once: no call goes uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_on_two_replicas_lose_no_call() {
    let redis = redis().await;
    let clock = ManualClock::new(START);
    let replicas: Vec<FrictionController> = (0..2)
        .map(|_| {
            FrictionController::new(friction_config()).unwrap().with_clock(clock.clone()).shared_state(redis.clone())
        })
        .collect();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let replica = replicas[n % 2].clone();
            tokio::spawn(async move { replica.check_token(&alice(), Call::new("list_notes")).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().allowed);
    }
    assert_eq!(replicas[0].status_of(&alice()).await.unwrap().calls, 40);
    redis.delete_all().await.unwrap();
}

/// With the shared store down, each replica controls on its own: friction degrades, calls keep working.
#[tokio::test]
async fn friction_falls_back_to_local_state_when_the_shared_store_fails() {
    let clock = ManualClock::new(START);
    let friction = FrictionController::new(friction_config())
        .unwrap()
        .with_clock(clock.clone())
        .shared_state(Arc::new(Unreachable));
    let mut blocked = false;
    for _ in 0..60 {
        clock.advance(Duration::from_millis(300));
        blocked |= !friction.check_token(&alice(), Call::new("delete_note")).await.unwrap().allowed;
    }
    assert!(blocked, "hammering one controlled tool is still blocked, by this replica's own state");
    assert_eq!(friction.status_of(&alice()).await.unwrap().calls, 60);
}
