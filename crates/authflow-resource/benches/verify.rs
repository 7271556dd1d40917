//! The resource toolkit's per-request cost with a warm cache (`cargo bench -p authflow-resource --bench
//! verify`): `IntrospectionVerifier::verify` of a cached token, and a request through `BearerAuthLayer` vs
//! the same route without it (in-process, no sockets on the measured path).
//!
//! The verifier is warmed against a local fake introspection endpoint; every measured call is a cache hit.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use authflow_core::ssrf::SsrfPolicy;
use authflow_resource::{BearerAuthLayer, IntrospectionVerifier, SafeHttpClient, TokenVerifier};
use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use tower::ServiceExt;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const TOKEN: &str = "af_at_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

/// Poll a future that must finish without waiting (a cache hit never suspends).
fn now_or_never<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a cache hit suspended"),
    }
}

/// A fake introspection endpoint that accepts every token; returns its URL.
async fn fake_introspection() -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let answer = json!({
        "active": true, "sub": "alice", "client_id": "app", "scope": "notes:read notes:write",
        "aud": RESOURCE, "exp": exp, "iat": exp - 3600, "iss": "https://auth.example.com", "token_type": "Bearer",
    });
    let router = Router::new().route("/introspect", post(move || async move { Json(answer) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn tools_call(Json(request): Json<Value>) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [], "isError": false}}))
}

fn request(path: &str) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_notes"}}"#))
        .unwrap()
}

fn cached(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let verifier = runtime.block_on(async {
        let url = fake_introspection().await;
        let http = SafeHttpClient::builder(SsrfPolicy::development()).timeout(Duration::from_secs(5)).build().unwrap();
        let verifier = IntrospectionVerifier::builder(url.parse().unwrap(), RESOURCE)
            .client_secret_basic("rs", "secret")
            .http_client(http)
            .cache_max_ttl(Duration::from_secs(3600))
            .build()
            .unwrap();
        verifier.verify(TOKEN).await.expect("the fake endpoint accepts the token");
        verifier
    });

    let mut group = c.benchmark_group("introspection_cache_hit");
    group.bench_function("verify", |b| b.iter(|| now_or_never(verifier.verify(black_box(TOKEN))).unwrap()));

    // The same route with and without the layer, called as a tower service (no HTTP).
    let layer =
        BearerAuthLayer::new(verifier.clone(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
            .require_scopes(["notes:read"]);
    let app = Router::new().route("/mcp", post(tools_call).layer(layer)).route("/open/mcp", post(tools_call));
    let local = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for path in ["/mcp", "/open/mcp"] {
        let status = local.block_on(app.clone().oneshot(request(path))).unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
    group.bench_function("tools_call_with_layer", |b| {
        b.iter(|| local.block_on(app.clone().oneshot(request("/mcp"))).unwrap())
    });
    group.bench_function("tools_call_without_layer", |b| {
        b.iter(|| local.block_on(app.clone().oneshot(request("/open/mcp"))).unwrap())
    });
    group.finish();
    drop(runtime);
}

criterion_group!(benches, cached);
criterion_main!(benches);
