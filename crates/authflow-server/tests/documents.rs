//! Documents the server fetches from URLs clients name, over real HTTP on loopback: client ID metadata
//! documents (valid, mismatched `client_id`, oversized, slow, redirected to a private address, cached per
//! its headers) and a `private_key_jwt` client's `jwks_uri` (fetched, re-fetched for a rotated key).
//!
//! The document server is local and plain-http, so the authorization server gets an outbound client with
//! the development SSRF policy — which the builder accepts only for a loopback issuer (tested below).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authflow_core::jose::{jws, Algorithm, PrivateKey};
use authflow_core::ssrf::SsrfPolicy;
use authflow_core::{ClientAuthMethod, GrantType};
use authflow_http::SafeHttpClient;
use authflow_server::{AuthServer, BuildError, OsEntropy};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use common::browser::*;
use common::{Backend, ClientSpec, Reply, TestServer};
use serde_json::{json, Value};

/// A document and the `Cache-Control` it is served with.
type Served = (Value, Option<&'static str>);

/// A loopback server of JSON documents: `/doc/{name}` serves what the test put there, with an optional
/// `Cache-Control`; `/slow` never answers in time; `/to-private` redirects to a private address.
#[derive(Clone, Default)]
struct Documents {
    base: String,
    docs: Arc<Mutex<HashMap<String, Served>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    slow_hits: Arc<AtomicUsize>,
}

impl Documents {
    async fn start() -> Documents {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut docs = Documents { base: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        docs.base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/doc/{name}", get(serve_doc))
            .route("/slow", get(slow))
            .route("/to-private", get(|| async { Redirect::temporary("http://10.1.2.3/client.json") }))
            .with_state(docs.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        docs
    }

    fn url(&self, name: &str) -> String {
        format!("{}/doc/{name}", self.base)
    }

    fn put(&self, name: &str, doc: Value, cache_control: Option<&'static str>) {
        self.docs.lock().unwrap().insert(name.to_owned(), (doc, cache_control));
    }

    fn hits(&self, name: &str) -> usize {
        self.hits.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    /// A valid public client document for `name`.
    fn client(&self, name: &str) -> Value {
        json!({
            "client_id": self.url(name),
            "client_name": "Document Client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
    }
}

async fn serve_doc(State(docs): State<Documents>, Path(name): Path<String>) -> Response {
    *docs.hits.lock().unwrap().entry(name.clone()).or_default() += 1;
    let found = docs.docs.lock().unwrap().get(&name).cloned();
    match found {
        Some((doc, Some(cc))) => ([(header::CACHE_CONTROL, cc)], axum::Json(doc)).into_response(),
        Some((doc, None)) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn slow(State(docs): State<Documents>) -> &'static str {
    docs.slow_hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    "{}"
}

fn development_client() -> SafeHttpClient {
    SafeHttpClient::builder(SsrfPolicy::development()).timeout(Duration::from_secs(1)).build().unwrap()
}

async fn server(backend: Backend) -> TestServer {
    let server = TestServer::start_with(backend, |b| b.http_client(development_client())).await;
    add_user(&server, "alice", false).await;
    server
}

on_every_backend!(a_metadata_document_client_completes_the_code_flow, jwks_uri_keys_are_fetched_and_refetched);

/// The whole flow with a URL for a client id: the document is fetched, the consent page names the site it
/// came from, and tokens are issued to (and stored for) the URL client.
async fn a_metadata_document_client_completes_the_code_flow(backend: Backend) {
    let docs = Documents::start().await;
    docs.put("app.json", docs.client("app.json"), None);
    let server = server(backend).await;
    let client_id = docs.url("app.json");

    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    assert_page(&consent, 200, "<strong>Document Client</strong> wants to access your account");
    assert!(consent.text.contains("describes itself from <strong>127.0.0.1</strong>"), "{}", consent.text);
    let answer = decide(&mut browser, &consent, "approve").await;
    let code = redirected_to(&answer, REDIRECT)["code"].clone();

    let tokens = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await;
    let body = tokens.assert_token().clone();
    let refreshed = server
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    refreshed.assert_token();
    let stored = server.store.find_client(&client_id).await.unwrap().expect("a client row mirrors the document");
    assert_eq!(stored.origin, authflow_store::ClientOrigin::MetadataDocument);
    assert_eq!(stored.metadata.redirect_uris, vec![REDIRECT.to_owned()]);
    let lifetime = stored.expires_at.expect("document clients expire when unused").saturating_since(server.clock_now());
    assert_eq!(lifetime, authflow_server::Policy::default().grant_ttl, "a grant's lifetime past the last fetch");
    assert_eq!(docs.hits("app.json"), 1, "one fetch served the whole flow (default freshness)");

    // An administrator's switch holds for document clients too.
    server.store.update_client(&authflow_store::Client { disabled: true, ..stored }).await.unwrap();
    let page = Browser::new(&server).get(&Authz::new(&client_id).url()).await;
    assert_page(&page, 400, "has been disabled");
    server.stop().await;
}

/// Unusable documents are shown to the user as an error page and never redirected to; nothing is stored.
#[tokio::test]
async fn unusable_documents_are_refused_with_a_page() {
    let docs = Documents::start().await;
    let server = server(Backend::Memory).await;
    let mismatched = docs.client("other.json");
    docs.put("mismatch.json", mismatched, None);
    let mut big = docs.client("big.json");
    big["client_name"] = json!("x".repeat(1000));
    big["contacts"] = json!(["y".repeat(1000), "y".repeat(1000), "y".repeat(1000), "y".repeat(1000)]);
    docs.put("big.json", big, None);
    let mut secret = docs.client("secret.json");
    secret["token_endpoint_auth_method"] = json!("client_secret_basic");
    docs.put("secret.json", secret, None);
    let mut bad_redirect = docs.client("js.json");
    bad_redirect["redirect_uris"] = json!(["javascript:alert(1)"]);
    docs.put("js.json", bad_redirect, None);
    docs.put("array.json", json!([1, 2, 3]), None);

    let cases = [
        (docs.url("mismatch.json"), "its client_id is not the URL it was fetched from"),
        (docs.url("big.json"), "larger than 5120 bytes"),
        (docs.url("secret.json"), "must be none or private_key_jwt"),
        (docs.url("js.json"), "javascript:alert(1)"),
        (docs.url("array.json"), "not a JSON object"),
        (docs.url("missing.json"), "HTTP 404"),
        (format!("{}/slow", docs.base), "timed out"),
        (format!("{}/to-private", docs.base), "SSRF policy"),
    ];
    for (client_id, why) in cases {
        let page = Browser::new(&server).get(&Authz::new(&client_id).url()).await;
        assert_page(&page, 400, "metadata document");
        assert!(page.text.contains(why), "{client_id}: the page should say {why:?}:\n{}", page.text);
        assert!(server.store.find_client(&client_id).await.unwrap().is_none(), "{client_id}: nothing stored");
        let token =
            server.post_form("/token", &[("grant_type", "authorization_code"), ("client_id", &client_id)], None).await;
        token.assert_error(401, "invalid_client");
    }
    assert_eq!(docs.slow_hits.load(Ordering::SeqCst), 2, "the slow document was asked for, and given up on");
    server.stop().await;
}

/// The answer's caching headers decide how often the document is fetched; an edited document is picked up
/// once the cached copy is stale.
#[tokio::test]
async fn documents_are_cached_as_their_headers_say() {
    let docs = Documents::start().await;
    let server = server(Backend::Memory).await;
    docs.put("short.json", docs.client("short.json"), Some("max-age=60"));
    docs.put("never.json", docs.client("never.json"), Some("no-store"));
    let login_page = |id: String| {
        let server = &server;
        async move { Browser::new(server).get(&Authz::new(&id).url()).await }
    };

    for _ in 0..3 {
        assert_page(&login_page(docs.url("short.json")).await, 200, "Document Client");
        assert_page(&login_page(docs.url("never.json")).await, 200, "Document Client");
    }
    assert_eq!(docs.hits("short.json"), 1, "max-age=60: fetched once");
    assert_eq!(docs.hits("never.json"), 3, "no-store: fetched every time");

    let mut renamed = docs.client("short.json");
    renamed["client_name"] = json!("Renamed Client");
    docs.put("short.json", renamed, Some("max-age=60"));
    assert_page(&login_page(docs.url("short.json")).await, 200, "Document Client");
    server.advance(Duration::from_secs(61));
    assert_page(&login_page(docs.url("short.json")).await, 200, "Renamed Client");
    assert_eq!(docs.hits("short.json"), 2);
    let stored = server.store.find_client(&docs.url("short.json")).await.unwrap().unwrap();
    assert_eq!(stored.metadata.client_name.as_deref(), Some("Renamed Client"), "the client row follows");
    server.stop().await;
}

/// A signed client assertion for `client_id` at the test server's token endpoint.
fn assertion(server: &TestServer, client_id: &str, key: &PrivateKey) -> String {
    let now = server.clock_now().as_secs();
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": server.url("/token"),
        "exp": now + 60, "iat": now, "jti": authflow_server::random_id(),
    });
    jws::sign(None, &claims, key).unwrap()
}

async fn token(server: &TestServer, client_id: &str, key: &PrivateKey) -> Reply {
    let assertion = assertion(server, client_id, key);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    server.post_form("/token", &form, None).await
}

/// `private_key_jwt` with keys at a `jwks_uri`: fetched on first use, fetched again when an assertion names
/// a key the cached set lacks (at most every 30 s), and a key the set no longer has is refused.
async fn jwks_uri_keys_are_fetched_and_refetched(backend: Backend) {
    let docs = Documents::start().await;
    let server = server(backend).await;
    let old = PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, Some("old".into()));
    let new = PrivateKey::generate(Algorithm::EdDSA, &mut OsEntropy, Some("new".into()));
    docs.put("jwks.json", json!({"keys": [old.public_jwk()]}), None);
    let mut spec =
        ClientSpec::service().method(ClientAuthMethod::PrivateKeyJwt).grants(&[GrantType::ClientCredentials]);
    spec.jwks_uri = Some(docs.url("jwks.json"));
    let (client_id, _) = server.add_client(spec).await;
    token(&server, &client_id, &old).await.assert_token();
    token(&server, &client_id, &old).await.assert_token();
    assert_eq!(docs.hits("jwks.json"), 1, "the key set is cached");

    // The client rotates: the new key is picked up by one re-fetch, the old one is then refused.
    docs.put("jwks.json", json!({"keys": [new.public_jwk()]}), None);
    server.advance(Duration::from_secs(31));
    token(&server, &client_id, &new).await.assert_token();
    assert_eq!(docs.hits("jwks.json"), 2, "an unknown key forces one re-fetch");
    token(&server, &client_id, &old).await.assert_error(401, "invalid_client");
    assert_eq!(docs.hits("jwks.json"), 2, "a re-fetch within 30 s of the last one is not made");
    server.stop().await;
}

#[tokio::test]
async fn discovery_advertises_metadata_documents() {
    let server = server(Backend::Memory).await;
    let m =
        Reply::from(server.http.get(server.url("/.well-known/oauth-authorization-server")).send().await.unwrap()).await;
    assert_eq!(m.body["client_id_metadata_document_supported"], true);
    server.stop().await;
}

/// Plain-http documents are a local-test mode: a server with a public issuer refuses such an outbound client
/// at build time, and the default client refuses http document URLs outright.
#[tokio::test]
async fn the_test_mode_cannot_reach_production() {
    let store: Arc<dyn authflow_store::Store> = Arc::new(authflow_store::MemoryStore::new());
    let public = AuthServer::builder("https://auth.example.com".parse().unwrap(), store.clone())
        .http_client(development_client())
        .build();
    assert!(matches!(public, Err(BuildError::InsecureHttpClient(_))), "{public:?}");

    let docs = Documents::start().await;
    docs.put("app.json", docs.client("app.json"), None);
    let strict = TestServer::start(Backend::Memory).await;
    let page = Browser::new(&strict).get(&Authz::new(&docs.url("app.json")).url()).await;
    assert_page(&page, 400, "not registered");
    assert_eq!(docs.hits("app.json"), 0, "nothing was fetched");
    strict.stop().await;
}
