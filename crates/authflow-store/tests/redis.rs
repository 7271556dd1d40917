//! The Redis-backed replay store and rate limiter against the real Redis (`AUTHFLOW_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Each test works under its own key prefix and deletes it afterwards. An
//! unreachable Redis fails the tests, naming the URL; they are never skipped.

use std::sync::Arc;
use std::time::Duration;

use authflow_core::ratelimit::{Decision, MemoryRateLimiter, RateLimit};
use authflow_core::UnixTime;
use authflow_store::redis::RedisShared;
use authflow_store::{RateLimiter, ReplayStore, SharedMap, Swap};

fn redis_url() -> String {
    std::env::var("AUTHFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn redis() -> Arc<RedisShared> {
    let prefix = format!("authflow-test:{}:", authflow_store::fixtures::unique_name());
    let url = redis_url();
    let shared = RedisShared::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} does not answer ({e}); start it or set AUTHFLOW_TEST_REDIS_URL"));
    Arc::new(shared)
}

const NOW: UnixTime = UnixTime::from_millis(1_800_000_000_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_marker_is_remembered_once_even_under_concurrency() {
    let redis = redis().await;
    let expires = NOW + Duration::from_secs(60);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move { redis.remember_once("jti:client:abc", expires, NOW).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one of 50 concurrent uses is the first");
    assert!(redis.remember_once("jti:client:other", expires, NOW).await.unwrap(), "other keys are independent");

    // The marker lives as long as asked, and no longer.
    assert!(redis.remember_once("short", NOW + Duration::from_millis(150), NOW).await.unwrap());
    assert!(!redis.remember_once("short", NOW + Duration::from_millis(150), NOW).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(redis.remember_once("short", NOW + Duration::from_millis(150), NOW).await.unwrap(), "expired");
    redis.delete_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shared_limit_holds_under_concurrency() {
    let redis = redis().await;
    let limit = RateLimit::new(10, Duration::from_secs(60)).unwrap();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move { redis.check("token:192.0.2.1", &limit, NOW).await.unwrap().is_allowed() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 10, "exactly the limit is let through, however the requests interleave");
    let refused = redis.check("token:192.0.2.1", &limit, NOW).await.unwrap();
    let local = MemoryRateLimiter::new();
    for _ in 0..10 {
        local.check("k", &limit, NOW);
    }
    let expected = local.check("k", &limit, NOW);
    assert_eq!(refused, expected, "the same refusal and Retry-After as the in-process limiter");
    assert!(!refused.is_allowed());
    assert!(redis.check("token:192.0.2.2", &limit, NOW).await.unwrap().is_allowed(), "per key");
    redis.delete_all().await.unwrap();
}

/// The same decisions as the in-process limiter for the same sequence: one formula, two stores.
#[tokio::test]
async fn decisions_match_the_in_process_limiter() {
    let redis = redis().await;
    let memory = MemoryRateLimiter::new();
    let limit = RateLimit::new(5, Duration::from_secs(10)).unwrap();
    let mut at = NOW;
    for step in 0..80u64 {
        at = at + Duration::from_millis(137 * (step % 7) + 20);
        let shared: Decision = RateLimiter::check(&*redis, "k", &limit, at).await.unwrap();
        let local = memory.check("k", &limit, at);
        assert_eq!(shared, local, "step {step} at {at:?}");
    }
    redis.ping().await.unwrap();
    redis.delete_all().await.unwrap();
}

#[tokio::test]
async fn the_shared_map_stores_expires_and_forgets() {
    let redis = redis().await;
    assert_eq!(redis.get("a").await.unwrap(), None);
    redis.put("a", b"\x00binary\xff", Duration::from_secs(60)).await.unwrap();
    assert_eq!(redis.get("a").await.unwrap().as_deref(), Some(&b"\x00binary\xff"[..]), "bytes round-trip");
    redis.put("short", b"x", Duration::from_millis(100)).await.unwrap();
    redis.put("zero", b"x", Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(redis.get("short").await.unwrap(), None, "expired");
    assert_eq!(redis.get("zero").await.unwrap(), None, "a zero lifetime is the shortest one, not forever");
    redis.remove("a").await.unwrap();
    redis.remove("never-there").await.unwrap();
    assert_eq!(redis.get("a").await.unwrap(), None);
    redis.delete_all().await.unwrap();
}

#[tokio::test]
async fn compare_and_swap_tells_absent_from_empty_and_returns_the_winner() {
    let redis = redis().await;
    let ttl = Duration::from_secs(60);
    assert_eq!(redis.compare_and_swap("k", Some(b""), b"v1", ttl).await.unwrap(), Swap::Conflict(None));
    assert_eq!(redis.compare_and_swap("k", None, b"", ttl).await.unwrap(), Swap::Done, "absent -> empty");
    assert_eq!(redis.compare_and_swap("k", None, b"v1", ttl).await.unwrap(), Swap::Conflict(Some(Vec::new())));
    assert_eq!(redis.compare_and_swap("k", Some(b""), b"v1", ttl).await.unwrap(), Swap::Done);
    assert_eq!(
        redis.compare_and_swap("k", Some(b"v0"), b"v2", ttl).await.unwrap(),
        Swap::Conflict(Some(b"v1".to_vec()))
    );
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]), "a conflict writes nothing");
    redis.delete_all().await.unwrap();
}

/// 4 workers × 25 read-modify-swap increments of one counter: none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_loses_no_update_under_contention() {
    let redis = redis().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..25 {
                    let mut seen = redis.get("counter").await.unwrap();
                    loop {
                        let n: u32 = seen.as_deref().map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let next = (n + 1).to_string();
                        match redis
                            .compare_and_swap("counter", seen.as_deref(), next.as_bytes(), Duration::from_secs(60))
                            .await
                            .unwrap()
                        {
                            Swap::Done => break,
                            Swap::Conflict(theirs) => {
                                conflicts += 1;
                                seen = theirs;
                            }
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(redis.get("counter").await.unwrap().as_deref(), Some(&b"100"[..]));
    redis.delete_all().await.unwrap();
}

#[tokio::test]
async fn scan_finds_live_entries_under_a_literal_prefix() {
    let redis = redis().await;
    let ttl = Duration::from_secs(60);
    for i in 0..30 {
        redis.put(&format!("friction:{i}"), i.to_string().as_bytes(), ttl).await.unwrap();
    }
    redis.put("fric*:glob", b"g", ttl).await.unwrap();
    redis.put("other:1", b"o", ttl).await.unwrap();
    let mut found = redis.scan("friction:", 100).await.unwrap();
    found.sort_by_key(|(_, v)| String::from_utf8(v.clone()).unwrap().parse::<u32>().unwrap());
    assert_eq!(found.len(), 30);
    assert_eq!(found[7], ("friction:7".to_owned(), b"7".to_vec()), "keys come back without the deployment prefix");
    assert_eq!(redis.scan("friction:", 10).await.unwrap().len(), 10, "bounded");
    assert_eq!(redis.scan("fric*", 100).await.unwrap(), vec![("fric*:glob".to_owned(), b"g".to_vec())], "no glob");
    assert!(redis.scan("nothing:", 100).await.unwrap().is_empty());
    redis.delete_all().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error() {
    let err = RedisShared::connect("redis://127.0.0.1:1", "x:").await.unwrap_err();
    assert!(matches!(err, authflow_store::StoreError::Unavailable(_)), "{err:?}");
}

/// `rediss://` is understood: TLS (rustls) is compiled in, and the URL goes to the client unchecked by us.
/// Without TLS, `Client::open` itself refuses ("can't connect with TLS, the feature is not enabled"). The
/// test Redis speaks plain RESP and never answers a TLS ClientHello (it waits for the end of an inline
/// command it cannot find), so the handshake times out, while `redis://` to the same server connects.
#[tokio::test]
async fn a_rediss_url_negotiates_tls() {
    let url = redis_url();
    let tls_url = url.replacen("redis://", "rediss://", 1);
    assert!(tls_url.starts_with("rediss://"), "AUTHFLOW_TEST_REDIS_URL {url:?} is not a redis:// URL");
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Duration::from_millis(500));

    let client = redis::Client::open(tls_url.as_str()).unwrap_or_else(|e| panic!("{tls_url} is refused: {e}"));
    let started = std::time::Instant::now();
    let err = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect_err("a plain-RESP server cannot complete a TLS handshake");
    assert!(err.is_timeout(), "the TLS handshake waits for a server hello that never comes: {err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the connection timeout");

    let plain = redis::Client::open(url.as_str()).unwrap();
    let mut conn = plain.get_multiplexed_async_connection_with_config(&config).await.expect("redis:// connects");
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG", "the same server answers in clear: only TLS was waiting");
}
