//! The HTTP surface over real HTTP: challenges header by header, per-route scopes, extractors, metadata
//! routes with CORS, the AS-metadata pass-through and trailing slashes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::SsrfPolicy;
use authflow_resource::clock::ManualClock;
use authflow_resource::{
    AuthRejection, Authenticated, BearerAuthLayer, ProtectedResource, RequestLogLayer, RequireScopeLayer,
    SafeHttpClient, TokenVerifier, TrailingSlashLayer, VerifiedToken, VerifyError,
};
use axum::routing::{get, post};
use axum::Router;
use common::{send, serve, As, START};
use serde_json::{json, Value};
use tower::Layer;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// `read` has notes:read, `write` has both, `down` makes the verifier unavailable; the rest are invalid.
/// `Tokens::AtOnce` gives its verdicts from [`TokenVerifier::cached`] as a warm cache does, so the layer
/// decides without awaiting; `Tokens::Awaited` only from `verify`.
#[derive(Debug, Clone, Copy)]
enum Tokens {
    Awaited,
    AtOnce,
}

fn verdict(token: &str) -> Result<VerifiedToken, VerifyError> {
    match token {
        "read" => Ok(VerifiedToken::new("alice").with_scope("notes:read".parse().unwrap()).with_client_id("app")),
        "write" => Ok(VerifiedToken::new("bob").with_scope("notes:read notes:write".parse().unwrap())),
        "none" => Ok(VerifiedToken::new("carol")),
        "down" => Err(VerifyError::unavailable("the authorization server is down")),
        _ => Err(VerifyError::invalid("unknown token")),
    }
}

#[async_trait::async_trait]
impl TokenVerifier for Tokens {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        verdict(token)
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        matches!(self, Tokens::AtOnce).then(|| verdict(token).map(Arc::new))
    }
}

async fn admin(auth: Authenticated) -> Result<String, AuthRejection> {
    auth.require_scopes(&["notes:admin"])?;
    Ok(format!("admin {}", auth.principal().unwrap_or("?")))
}

fn app(resource: &ProtectedResource, tokens: Tokens) -> Router {
    Router::new()
        .route("/mcp", get(|t: VerifiedToken| async move { format!("hello {}", t.principal().unwrap_or("?")) }))
        .route("/mcp/notes", post(|| async { "written" }).layer(RequireScopeLayer::new(["notes:write"])))
        .route("/mcp/admin", post(admin))
        .route("/mcp/optional", get(|t: Option<VerifiedToken>| async move { format!("{}", t.is_some()) }))
        .layer(resource.bearer_auth(tokens).require_scopes(["notes:read"]))
        .merge(resource.router())
        .route("/public", get(|t: Option<VerifiedToken>| async move { format!("{}", t.is_some()) }))
        .route("/misconfigured", get(|t: VerifiedToken| async move { t.subject.unwrap_or_default() }))
}

async fn start(tokens: Tokens) -> String {
    let resource = ProtectedResource::new(RESOURCE)
        .unwrap()
        .authorization_server("https://auth.example.com")
        .scopes_supported(["notes:read", "notes:write"])
        .resource_name("Notes");
    let router = app(&resource, tokens).layer(RequestLogLayer::new());
    let app = TrailingSlashLayer::new().layer(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await.unwrap();
    });
    base
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[track_caller]
fn assert_json_error(r: &common::Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.body["error"], code);
    assert!(r.body["error_description"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_header_by_header() {
    challenges(Tokens::Awaited).await;
}

/// The same answers when the layer decides on a verdict the verifier has at hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_header_by_header_from_cached_verdicts() {
    challenges(Tokens::AtOnce).await;
}

async fn challenges(tokens: Tokens) {
    let base = start(tokens).await;
    let mcp = format!("{base}/mcp");

    // No token: 401, no error code (RFC 6750 §3.1), the scope needed and where the metadata is.
    let r = send(client().get(&mcp)).await;
    assert_json_error(&r, 401, "invalid_token");
    assert_eq!(r.headers.get_all("www-authenticate").iter().count(), 1);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer scope=\"notes:read\", resource_metadata=\"{PRM}\"").as_str())
    );

    // Another scheme counts as no token.
    let r = send(client().get(&mcp).basic_auth("a", Some("b"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer scope=\"notes:read\", resource_metadata=\"{PRM}\"").as_str())
    );

    // An invalid token: 401 invalid_token.
    let r = send(client().get(&mcp).bearer_auth("nope")).await;
    assert_json_error(&r, 401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer error=\"invalid_token\", scope=\"notes:read\", resource_metadata=\"{PRM}\"").as_str())
    );
    assert_eq!(r.body["error_description"], "unknown token");

    // A valid token without the layer's scope: 403 insufficient_scope naming it.
    let r = send(client().get(&mcp).bearer_auth("none")).await;
    assert_json_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!("Bearer error=\"insufficient_scope\", scope=\"notes:read\", resource_metadata=\"{PRM}\"").as_str()
        )
    );

    // Scheme case-insensitive, several spaces allowed.
    let r = send(client().get(&mcp).header("authorization", "bEaReR   read")).await;
    assert_eq!((r.status, r.body.clone()), (200, Value::Null));
    assert_eq!(r.header("www-authenticate"), None);

    // A route needing more: 403 naming everything needed, so the client can step up in one go.
    let r = send(client().post(format!("{base}/mcp/notes")).bearer_auth("read")).await;
    assert_json_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"notes:read notes:write\", resource_metadata=\"{PRM}\""
            )
            .as_str()
        )
    );
    let r = send(client().post(format!("{base}/mcp/notes")).bearer_auth("write")).await;
    assert_eq!(r.status, 200);
    // In-handler check through the `Authenticated` extractor.
    let r = send(client().post(format!("{base}/mcp/admin")).bearer_auth("write")).await;
    assert_json_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"notes:admin notes:read\", resource_metadata=\"{PRM}\""
            )
            .as_str()
        )
    );

    // Malformed requests: 400 invalid_request.
    let r = send(client().get(format!("{mcp}?access_token=read"))).await;
    assert_json_error(&r, 400, "invalid_request");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer error=\"invalid_request\", resource_metadata=\"{PRM}\"").as_str())
    );
    let r = send(client().get(format!("{mcp}?access_token=read")).bearer_auth("read")).await;
    assert_eq!(r.status, 400, "a token in the query is refused even next to a header");
    let mut two = reqwest::header::HeaderMap::new();
    two.append("authorization", "Bearer read".parse().unwrap());
    two.append("authorization", "Bearer write".parse().unwrap());
    let r = send(client().get(&mcp).headers(two)).await;
    assert_json_error(&r, 400, "invalid_request");
    let r = send(client().get(&mcp).header("authorization", "Bearer a\"b")).await;
    assert_json_error(&r, 401, "invalid_token");

    // Verifier unavailable: 503, no challenge, Retry-After.
    let r = send(client().get(&mcp).bearer_auth("down")).await;
    assert_json_error(&r, 503, "temporarily_unavailable");
    assert_eq!((r.header("www-authenticate"), r.header("retry-after")), (None, Some("5")));
    assert!(!r.body.to_string().contains("down"), "internal reasons stay internal");

    // Routes outside the layer: the optional extractor sees nothing; the mandatory one is a 500.
    assert_eq!(
        client().get(format!("{base}/public")).bearer_auth("read").send().await.unwrap().text().await.unwrap(),
        "false"
    );
    let r = send(client().get(format!("{base}/misconfigured")).bearer_auth("read")).await;
    assert_json_error(&r, 500, "server_error");
    assert_eq!(
        client().get(format!("{base}/mcp/optional")).bearer_auth("read").send().await.unwrap().text().await.unwrap(),
        "true"
    );
}

/// A server requiring `notes:read` that advertises `notes:read notes:write`: 401s name both (what a client
/// should ask for), 403s only what the request needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_can_advertise_more_scope_than_is_required() {
    let resource = ProtectedResource::new(RESOURCE).unwrap().authorization_server("https://auth.example.com");
    let layer = resource
        .bearer_auth(Tokens::AtOnce)
        .require_scopes(["notes:read"])
        .challenge_scopes(["notes:write", "notes:read"]);
    assert_eq!(layer.required_scopes().map(ToString::to_string).as_deref(), Some("notes:read"));
    let router = Router::new()
        .route("/mcp", get(|t: VerifiedToken| async move { t.principal().unwrap_or("?").to_owned() }))
        .route("/mcp/admin", post(admin))
        .layer(layer);
    let base = serve(router).await;
    let mcp = format!("{base}/mcp");

    let r = send(client().get(&mcp)).await;
    assert_json_error(&r, 401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer scope=\"notes:read notes:write\", resource_metadata=\"{PRM}\"").as_str())
    );
    let r = send(client().get(&mcp).bearer_auth("nope")).await;
    assert_json_error(&r, 401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!("Bearer error=\"invalid_token\", scope=\"notes:read notes:write\", resource_metadata=\"{PRM}\"")
                .as_str()
        )
    );
    // 403s keep naming what the request needs, not what is advertised.
    let r = send(client().get(&mcp).bearer_auth("none")).await;
    assert_json_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!("Bearer error=\"insufficient_scope\", scope=\"notes:read\", resource_metadata=\"{PRM}\"").as_str()
        )
    );
    let r = send(client().post(format!("{base}/mcp/admin")).bearer_auth("write")).await;
    assert_json_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"notes:admin notes:read\", resource_metadata=\"{PRM}\""
            )
            .as_str()
        )
    );
    // A read-only token is still enough to pass the layer.
    let r = send(client().get(&mcp).bearer_auth("read")).await;
    assert_eq!(r.status, 200);

    // Advertising without requiring: 401s name the scope, any valid token passes.
    let layer = resource.bearer_auth(Tokens::Awaited).challenge_scopes(["notes:read notes:write"]);
    assert_eq!(layer.required_scopes(), None);
    let base = serve(Router::new().route("/mcp", get(|| async { "ok" })).layer(layer)).await;
    let r = send(client().get(format!("{base}/mcp"))).await;
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer scope=\"notes:read notes:write\", resource_metadata=\"{PRM}\"").as_str())
    );
    assert_eq!(send(client().get(format!("{base}/mcp")).bearer_auth("none")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_token_and_trailing_slashes_are_the_same_route() {
    for tokens in [Tokens::Awaited, Tokens::AtOnce] {
        let base = start(tokens).await;
        for path in ["/mcp", "/mcp/", "/mcp//"] {
            let text =
                client().get(format!("{base}{path}")).bearer_auth("read").send().await.unwrap().text().await.unwrap();
            assert_eq!(text, "hello alice", "{path} {tokens:?}");
            let r = send(client().get(format!("{base}{path}"))).await;
            assert_eq!(r.status, 401, "{path} is protected too");
        }
        let r = send(client().post(format!("{base}/mcp/notes/")).bearer_auth("write")).await;
        assert_eq!(r.status, 200, "{tokens:?}");
        let r = send(client().post(format!("{base}/mcp/notes/")).bearer_auth("read")).await;
        assert_eq!(r.status, 403, "{tokens:?}: the route's own scope");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_at_both_urls_with_cors() {
    let base = start(Tokens::Awaited).await;
    let expected = json!({
        "resource": RESOURCE,
        "authorization_servers": ["https://auth.example.com"],
        "scopes_supported": ["notes:read", "notes:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Notes",
    });
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let r = send(client().get(format!("{base}{path}")).header("origin", "https://inspector.example")).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, expected, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));

        let preflight = client()
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", "https://inspector.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{path}: {}", preflight.status());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
        let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
        assert!(methods.contains("GET") && methods.contains("OPTIONS"), "{methods}");
    }
    // The protected route itself has no CORS (put a CorsLayer outside if browsers must call it).
    let r = send(client().get(format!("{base}/mcp")).header("origin", "https://inspector.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

/// A fake authorization server publishing RFC 8414 metadata naming `issuer` (its own URL unless given),
/// counting fetches.
async fn fake_as(issuer: Option<&str>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fetched = Arc::new(AtomicUsize::new(0));
    let doc = json!({
        "issuer": issuer.unwrap_or(&base),
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    });
    let count = fetched.clone();
    let router = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, fetched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_server_metadata_pass_through() {
    const PATH: &str = "/.well-known/oauth-authorization-server";
    // Against authflow's own server: served exactly as it publishes it.
    let a = As::start().await;
    let resource = ProtectedResource::new(RESOURCE)
        .unwrap()
        .authorization_server(a.base.as_str())
        .authorization_server_metadata_passthrough(common::dev_http())
        .unwrap();
    let base = serve(resource.router()).await;
    let direct: Value = reqwest::get(a.url(PATH)).await.unwrap().json().await.unwrap();
    let r = send(client().get(format!("{base}{PATH}")).header("origin", "https://inspector.example")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, direct);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // Cached for its TTL, whatever the traffic, then fetched again.
    let (issuer, fetched) = fake_as(None).await;
    let clock = ManualClock::new(START);
    let resource = ProtectedResource::new(RESOURCE)
        .unwrap()
        .authorization_server(issuer.as_str())
        .authorization_server_metadata_passthrough_with_clock(common::dev_http(), clock.clone())
        .unwrap();
    let base = serve(resource.router()).await;
    for _ in 0..5 {
        let r = send(client().get(format!("{base}{PATH}"))).await;
        assert_eq!((r.status, r.body["issuer"].as_str()), (200, Some(issuer.as_str())));
    }
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(300));
    assert_eq!(send(client().get(format!("{base}{PATH}"))).await.status, 200);
    assert_eq!(fetched.load(Ordering::SeqCst), 2);

    // A document naming another issuer is not served (RFC 8414 §3.3), and failures back off.
    let (impostor, fetched) = fake_as(Some("https://auth.example.com")).await;
    let resource = ProtectedResource::new(RESOURCE)
        .unwrap()
        .authorization_server(impostor.as_str())
        .authorization_server_metadata_passthrough_with_clock(common::dev_http(), clock.clone())
        .unwrap();
    let base = serve(resource.router()).await;
    for _ in 0..3 {
        let r = send(client().get(format!("{base}{PATH}"))).await;
        assert_eq!((r.status, r.header("retry-after")), (503, Some("10")));
    }
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "one attempt per back-off period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_client_is_required_for_the_pass_through_issuer() {
    let strict = SafeHttpClient::new(SsrfPolicy::strict()).unwrap();
    let r = ProtectedResource::new(RESOURCE).unwrap().authorization_server("http://127.0.0.1:8000");
    assert!(r.authorization_server_metadata_passthrough(strict).is_err());
    let _unused = BearerAuthLayer::new(Tokens::Awaited, PRM);
}
