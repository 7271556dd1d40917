//! `IntrospectionVerifier` edge cases against a scripted fake introspection endpoint, through the layer.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::SsrfPolicy;
use authflow_core::UnixTime;
use authflow_resource::clock::ManualClock;
use authflow_resource::introspection::basic_credentials;
use authflow_resource::{
    BearerAuthLayer, IntrospectionVerifier, IntrospectionVerifierBuilder, SafeHttpClient, TokenVerifier, VerifyError,
};
use common::fake::{Answer, FakeIntrospection};
use common::{get, serve, whoami_app, START};
use serde_json::{json, Value};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn active(exp: UnixTime) -> Value {
    json!({"active": true, "sub": "alice", "client_id": "app", "scope": "notes:read", "aud": RESOURCE, "exp": exp.as_secs()})
}

fn builder(fake: &FakeIntrospection, clock: &ManualClock) -> IntrospectionVerifierBuilder {
    let http = SafeHttpClient::builder(SsrfPolicy::development()).timeout(Duration::from_millis(300)).build().unwrap();
    IntrospectionVerifier::builder(fake.url.parse().unwrap(), RESOURCE)
        .client_secret_basic("rs", "secret")
        .http_client(http)
        .clock(clock.clone())
}

async fn app_with(verifier: IntrospectionVerifier) -> String {
    serve(whoami_app(BearerAuthLayer::new(verifier, PRM))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_server_trouble_is_503_and_not_cached() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Hang).await;
    let app = app_with(builder(&fake, &clock).build().unwrap()).await;
    let url = format!("{app}/whoami");

    for (answer, what) in [
        (Answer::Hang, "timeout"),
        (Answer::Status(500), "500"),
        (Answer::Status(502), "502"),
        (Answer::Status(401), "our credentials refused"),
        (Answer::Raw("{\"active\": tru"), "bad JSON"),
        (Answer::Raw("[true]"), "not an object"),
        (Answer::Raw(""), "empty"),
        (Answer::Huge(300 * 1024), "too large"),
    ] {
        fake.set(answer);
        let r = get(&url, Some("af_at_token")).await;
        assert_eq!(r.status, 503, "{what}");
        assert_eq!(r.header("retry-after"), Some("5"), "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(r.header("www-authenticate"), None, "{what}: not a token problem");
        assert_eq!(r.body["error"], "temporarily_unavailable", "{what}");
    }
    // Nothing was cached: the next answer is used at once.
    fake.set(Answer::Json(active(START + Duration::from_secs(600))));
    let calls = fake.calls();
    let r = get(&url, Some("af_at_token")).await;
    assert_eq!((r.status, fake.calls()), (200, calls + 1));
    assert_eq!(r.body["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_json_boolean_true_is_active() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Json(json!({"active": "true", "aud": RESOURCE}))).await;
    let app = app_with(builder(&fake, &clock).negative_cache_ttl(Duration::ZERO).build().unwrap()).await;
    let url = format!("{app}/whoami");
    for answer in [
        json!({"active": "true", "aud": RESOURCE}),
        json!({"active": 1, "aud": RESOURCE}),
        json!({"aud": RESOURCE}),
        json!({"active": false}),
    ] {
        fake.set(Answer::Json(answer.clone()));
        let r = get(&url, Some("af_at_token")).await;
        assert_eq!(r.status, 401, "{answer}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(format!("Bearer error=\"invalid_token\", resource_metadata=\"{PRM}\"").as_str())
        );
        assert_eq!(r.body["error"], "invalid_token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_as_a_list_and_as_a_string() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Hang).await;
    let verifier = builder(&fake, &clock).negative_cache_ttl(Duration::ZERO).cache_capacity(0).build().unwrap();
    let exp = (START + Duration::from_secs(600)).as_secs();
    for (aud, ok) in [
        (json!(["https://other.example/api", RESOURCE]), true),
        (json!([RESOURCE]), true),
        (json!("HTTPS://MCP.EXAMPLE.COM:443/mcp"), true),
        (json!(["https://other.example/api"]), false),
        (json!("https://mcp.example.com/mcp/"), false),
        (json!([]), false),
        (json!(null), false),
    ] {
        fake.set(Answer::Json(json!({"active": true, "aud": aud, "exp": exp, "sub": "alice"})));
        let result = verifier.verify("af_at_token").await;
        assert_eq!(result.is_ok(), ok, "{aud}: {result:?}");
        if !ok {
            assert!(matches!(result, Err(VerifyError::Invalid(_))));
        }
    }
    // Switched off, any audience passes (for single-resource deployments that issue none).
    let lax = builder(&fake, &clock).audience_check(false).build().unwrap();
    fake.set(Answer::Json(json!({"active": true, "exp": exp})));
    lax.verify("af_at_token").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_entries_end_exactly_at_exp_and_at_the_max_ttl() {
    let clock = ManualClock::new(START);
    let exp = START + Duration::from_secs(100);
    let fake = FakeIntrospection::start(Answer::Json(active(exp))).await;
    let verifier =
        builder(&fake, &clock).leeway(Duration::ZERO).cache_max_ttl(Duration::from_secs(300)).build().unwrap();

    assert!(verifier.cached("af_at_a").is_none(), "nothing at hand before the first call");
    let first = verifier.verify_shared("af_at_a").await.unwrap();
    assert_eq!(fake.calls(), 1);
    let again = verifier.verify_shared("af_at_a").await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "a cache hit hands out the cached verdict, not a copy");
    let at_hand = verifier.cached("af_at_a").expect("a cached verdict is at hand").unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &at_hand), "the one verify_shared gives");
    assert!(verifier.cached("af_at_other").is_none(), "keyed by the token");
    assert_eq!(verifier.verify("af_at_a").await.unwrap(), *first);
    clock.set(exp - Duration::from_millis(1));
    verifier.verify("af_at_a").await.expect("still cached one millisecond before exp");
    assert_eq!(fake.calls(), 1);
    clock.set(exp);
    // At exp the entry is gone; the server's answer (exp now) is expired too.
    assert_eq!(verifier.verify("af_at_a").await, Err(VerifyError::invalid("the token has expired")));
    assert_eq!(fake.calls(), 2);
    // That refusal is cached briefly (5 s by default), then asked again.
    assert!(verifier.verify("af_at_a").await.is_err());
    assert_eq!(verifier.cached("af_at_a"), Some(Err(VerifyError::invalid("the token is not active"))));
    assert_eq!(fake.calls(), 2);
    clock.advance(Duration::from_secs(5));
    assert!(verifier.verify("af_at_a").await.is_err());
    assert_eq!(fake.calls(), 3);

    // A long-lived token is re-checked every max TTL.
    let long = builder(&fake, &clock).cache_max_ttl(Duration::from_secs(30)).build().unwrap();
    fake.set(Answer::Json(active(clock_now(&clock) + Duration::from_secs(86_400))));
    let before = fake.calls();
    long.verify("af_at_b").await.unwrap();
    clock.advance(Duration::from_secs(29));
    long.verify("af_at_b").await.unwrap();
    assert_eq!(fake.calls(), before + 1);
    clock.advance(Duration::from_secs(1));
    long.verify("af_at_b").await.unwrap();
    assert_eq!(fake.calls(), before + 2);

    // Keys are hashes: two tokens never share an entry; a token without exp lives max TTL.
    fake.set(Answer::Json(json!({"active": true, "aud": RESOURCE})));
    long.verify("af_at_c").await.unwrap();
    long.verify("af_at_c").await.unwrap();
    assert_eq!(fake.calls(), before + 3);
}

fn clock_now(clock: &ManualClock) -> UnixTime {
    authflow_resource::clock::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_cold_token_make_one_call() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Gated(active(START + Duration::from_secs(600)))).await;
    let verifier = builder(&fake, &clock).build().unwrap();
    // Count requests as they reach the protected app, before the layer.
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    let router = whoami_app(BearerAuthLayer::new(verifier, PRM)).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            next.run(req)
        },
    ));
    let app = serve(router).await;
    let url = format!("{app}/whoami");
    let requests: Vec<_> = (0..50).map(|_| tokio::spawn(get_owned(url.clone()))).collect();

    // Hold the one introspection call until all 50 requests are in, then release it.
    tokio::time::timeout(Duration::from_secs(60), async {
        while arrived.load(Ordering::SeqCst) < 50 || fake.calls() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("all requests arrive");
    fake.gate.notify_one();
    for r in requests {
        let status = tokio::time::timeout(Duration::from_secs(60), r).await.expect("answered").unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(fake.calls(), 1, "one introspection call for 50 concurrent requests");
}

async fn get_owned(url: String) -> u16 {
    get(&url, Some("af_at_cold")).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_tokens_are_remembered_briefly() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Json(json!({"active": false}))).await;
    let verifier = builder(&fake, &clock).build().unwrap();
    assert!(verifier.verify("af_at_x").await.is_err());
    assert!(verifier.verify("af_at_x").await.is_err());
    assert_eq!(fake.calls(), 1);
    clock.advance(Duration::from_millis(4_999));
    assert!(verifier.verify("af_at_x").await.is_err());
    assert_eq!(fake.calls(), 1);
    clock.advance(Duration::from_millis(1));
    fake.set(Answer::Json(active(START + Duration::from_secs(600))));
    verifier.verify("af_at_x").await.unwrap();
    assert_eq!(fake.calls(), 2);
    // Over-long and empty tokens are refused unasked.
    assert!(verifier.verify(&"a".repeat(20_000)).await.is_err());
    assert!(verifier.verify("").await.is_err());
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_authentication_methods() {
    let clock = ManualClock::new(START);
    let fake = FakeIntrospection::start(Answer::Json(active(START + Duration::from_secs(600)))).await;
    let http = SafeHttpClient::new(SsrfPolicy::development()).unwrap();
    let base = || {
        IntrospectionVerifier::builder(fake.url.parse().unwrap(), RESOURCE)
            .http_client(http.clone())
            .clock(clock.clone())
            .cache_capacity(0)
    };
    let form = |body: &str| form_pairs(body);

    // client_secret_basic: id and secret form-urlencoded before Base64 (RFC 6749 §2.3.1).
    base().client_secret_basic("my:rs", "s3cr3t +/é").build().unwrap().verify("af_at_1").await.unwrap();
    let auth = fake.last_headers()["authorization"].to_str().unwrap().to_owned();
    assert_eq!(auth, basic_credentials("my:rs", "s3cr3t +/é"));
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth.strip_prefix("Basic ").unwrap()).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "my%3Ars:s3cr3t+%2B%2F%C3%A9");
    assert_eq!(
        form(&fake.last_body()),
        vec![("token".into(), "af_at_1".into()), ("token_type_hint".into(), "access_token".into())]
    );
    assert_eq!(fake.last_headers()["content-type"], "application/x-www-form-urlencoded");

    // client_secret_post.
    base().client_secret_post("rs", "s&=cret").build().unwrap().verify("af_at_2").await.unwrap();
    assert!(fake.last_headers().get("authorization").is_none());
    let body = form(&fake.last_body());
    assert!(
        body.contains(&("client_id".into(), "rs".into())) && body.contains(&("client_secret".into(), "s&=cret".into()))
    );

    // bearer, and none.
    base().bearer_token("rs-own-token").build().unwrap().verify("af_at_3").await.unwrap();
    assert_eq!(fake.last_headers()["authorization"], "Bearer rs-own-token");
    base().build().unwrap().verify("af_at_4").await.unwrap();
    assert!(fake.last_headers().get("authorization").is_none());
    assert!(!fake.last_body().contains("client_secret"));
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let d = |s: &str| {
                let s = s.replace('+', " ");
                let bytes: Vec<u8> = percent_decode(&s);
                String::from_utf8(bytes).unwrap()
            };
            (d(k), d(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_must_pass_the_ssrf_policy() {
    let strict = IntrospectionVerifier::builder("http://127.0.0.1:9/introspect".parse().unwrap(), RESOURCE).build();
    assert!(matches!(strict, Err(authflow_resource::BuildError::Ssrf(_))), "plain http is refused by default");
    let loopback = IntrospectionVerifier::builder("https://127.0.0.1/introspect".parse().unwrap(), RESOURCE).build();
    assert!(matches!(loopback, Err(authflow_resource::BuildError::Ssrf(_))), "loopback is refused by default");
}
