//! The gateway over real HTTP on loopback: what reaches the upstream (never the client's token; the
//! identity headers instead), what comes back (status, headers and SSE streams unchanged, event by event),
//! the ForwardAuth endpoint, friction control with its status route, and the SSRF check of the upstream. A fake verifier stands in for the
//! authorization server (the SDK tests in `clients.rs` run the gateway against a real one).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authflow_core::friction::{FrictionConfig, FrictionMode};
use authflow_core::ssrf::SsrfPolicy;
use authflow_gateway::{BuildError, Gateway};
use authflow_resource::{FrictionController, ProtectedResource, TokenVerifier, VerifiedToken, VerifyError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

/// Accepts `writer` (notes:read notes:write), `reader` (notes:read) and `stranger` (no notes scope).
#[derive(Debug)]
struct FakeVerifier;

#[async_trait::async_trait]
impl TokenVerifier for FakeVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let scope = match token {
            "writer" => "notes:read notes:write",
            "reader" => "notes:read",
            "stranger" => "profile",
            _ => return Err(VerifyError::invalid("unknown token")),
        };
        Ok(VerifiedToken::new(format!("user-{token}")).with_client_id("client-1").with_scope(scope.parse().unwrap()))
    }
}

/// What the upstream saw.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<(String, HeaderMap, Bytes)>,
}

#[derive(Clone)]
struct Upstream {
    seen: Arc<Mutex<Seen>>,
    /// Released by the test between the two SSE events.
    second_event: Arc<Notify>,
}

async fn record(State(up): State<Upstream>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    up.seen.lock().unwrap().requests.push((uri.to_string(), headers, body.clone()));
    let mut response = (StatusCode::ACCEPTED, body).into_response();
    response.headers_mut().insert("mcp-session-id", "session-42".parse().unwrap());
    response.headers_mut().insert("x-upstream", "yes".parse().unwrap());
    response
}

/// An SSE stream: one event at once, the second only when the test says so.
async fn events(State(up): State<Upstream>, headers: HeaderMap) -> Response {
    up.seen.lock().unwrap().requests.push(("/mcp (GET)".into(), headers, Bytes::new()));
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from_static(b"id: 1\ndata: {\"n\":1}\n\n"))).await;
        up.second_event.notified().await;
        let _ = tx.send(Ok(Bytes::from_static(b"id: 2\ndata: {\"n\":2}\n\n"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    base
}

struct Harness {
    gateway: String,
    upstream_base: String,
    resource: String,
    upstream: Upstream,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let upstream = Upstream { seen: Arc::default(), second_event: Arc::new(Notify::new()) };
    let app = Router::new()
        .route("/api/mcp", post(record).get(events).delete(record))
        .route("/api/mcp/{*rest}", post(record))
        .with_state(upstream.clone());
    let upstream_base = serve(app).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{gateway}/mcp");
    let metadata = ProtectedResource::new(&resource)
        .unwrap()
        .authorization_server("https://auth.example.com")
        .scopes_supported(["notes:read", "notes:write"]);
    let gw = Gateway::builder(format!("{upstream_base}/api/mcp").parse().unwrap(), metadata, FakeVerifier)
        .require_scopes(["notes:read"])
        .build()
        .await
        .unwrap();
    let router = gw.router();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    Harness { gateway, upstream_base, resource, upstream, http: reqwest::Client::new() }
}

impl Harness {
    fn seen(&self) -> Vec<(String, HeaderMap, Bytes)> {
        self.upstream.seen.lock().unwrap().requests.clone()
    }
}

#[tokio::test]
async fn the_upstream_gets_the_identity_and_never_the_token() {
    let h = start().await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let r = h
        .http
        .post(format!("{}?trace=1", h.resource))
        .bearer_auth("writer")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "session-42")
        .header("mcp-protocol-version", "2025-06-18")
        .header("x-auth-subject", "admin")
        .header("x-auth-scopes", "everything")
        .header("x-auth-role", "root")
        .header("cookie", "authflow-session=abc")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "private to this hop")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the upstream's status comes back unchanged");
    assert_eq!(r.headers()["mcp-session-id"], "session-42");
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.bytes().await.unwrap(), body.as_bytes(), "the body goes through unchanged, both ways");

    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    let (uri, headers, received) = &seen[0];
    assert_eq!(uri, "/api/mcp?trace=1", "the path maps onto the upstream's, the query is kept");
    assert_eq!(received, body.as_bytes());
    assert!(headers.get("authorization").is_none(), "token passthrough: {headers:?}");
    assert!(headers.get("cookie").is_none());
    assert!(headers.get("x-hop").is_none(), "a header named in Connection is hop-by-hop");
    assert!(headers.get("x-auth-role").is_none(), "any x-auth-* from the client is dropped");
    assert_eq!(headers["x-auth-subject"], "user-writer", "not the forged one");
    assert_eq!(headers["x-auth-client-id"], "client-1");
    assert_eq!(headers["x-auth-scopes"], "notes:read notes:write");
    assert_eq!(headers.get_all("x-auth-subject").iter().count(), 1);
    assert_eq!(headers["mcp-session-id"], "session-42");
    assert_eq!(headers["mcp-protocol-version"], "2025-06-18");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["host"], h.upstream_base.trim_start_matches("http://"), "Host names the upstream");

    // Below the endpoint too.
    let r = h.http.post(format!("{}/sub/path", h.resource)).bearer_auth("reader").send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(h.seen()[1].0, "/api/mcp/sub/path");
    assert_eq!(h.seen()[1].1["x-auth-scopes"], "notes:read");
}

#[tokio::test]
async fn without_a_good_token_the_upstream_is_never_called() {
    let h = start().await;
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", h.gateway);

    let r = h.http.post(&h.resource).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer scope=\"notes:read\", resource_metadata=\"{metadata_url}\"").as_str()
    );
    let r = h.http.post(&h.resource).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
    let r = h.http.post(&h.resource).bearer_auth("stranger").send().await.unwrap();
    assert_eq!(r.status(), 403, "a valid token without the required scope");
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"insufficient_scope\""));
    assert!(h.seen().is_empty(), "nothing reached the upstream");

    // Discovery works without a token.
    let metadata: Value = h.http.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], h.resource);
    assert_eq!(metadata["authorization_servers"], json!(["https://auth.example.com"]));
    assert_eq!(metadata["scopes_supported"], json!(["notes:read", "notes:write"]));

    // Only the MCP endpoint is proxied.
    let r = h.http.post(format!("{}/admin", h.gateway)).bearer_auth("writer").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = h.http.post(format!("{}x", h.resource)).bearer_auth("writer").send().await.unwrap();
    assert_eq!(r.status(), 404, "/mcpx is not below /mcp");
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn sse_streams_are_passed_on_event_by_event() {
    let h = start().await;
    let mut r = h
        .http
        .get(&h.resource)
        .bearer_auth("reader")
        .header("accept", "text/event-stream")
        .header("last-event-id", "7")
        .header("mcp-session-id", "session-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");

    // The first event arrives while the upstream still holds the second: nothing is buffered.
    let first = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await.expect("the first event").unwrap();
    assert_eq!(first.as_deref(), Some(&b"id: 1\ndata: {\"n\":1}\n\n"[..]));
    let seen = h.seen();
    assert_eq!(seen[0].1["last-event-id"], "7", "resumption works through the gateway");
    assert_eq!(seen[0].1["mcp-session-id"], "session-42");

    h.upstream.second_event.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await.expect("the second event").unwrap();
    assert_eq!(second.as_deref(), Some(&b"id: 2\ndata: {\"n\":2}\n\n"[..]));
    let end = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await.expect("the end").unwrap();
    assert_eq!(end, None, "the stream ends when the upstream's does");
}

#[tokio::test]
async fn large_request_bodies_stream_through() {
    let h = start().await;
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = h.http.post(&h.resource).bearer_auth("writer").body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.bytes().await.unwrap().len(), body.len());
    assert_eq!(h.seen()[0].2.as_ref(), body.as_slice());
}

#[tokio::test]
async fn verify_answers_forward_auth_requests() {
    let h = start().await;
    let verify = format!("{}/verify", h.gateway);
    let r = h.http.get(&verify).bearer_auth("writer").header("x-auth-subject", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "user-writer");
    assert_eq!(r.headers()["x-auth-client-id"], "client-1");
    assert_eq!(r.headers()["x-auth-scopes"], "notes:read notes:write");
    assert_eq!(r.headers()["cache-control"], "no-store");

    let r = h.http.get(&verify).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer scope=\"notes:read\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            h.gateway
        )
    );
    assert!(r.headers().get("x-auth-subject").is_none());
    let r = h.http.get(&verify).bearer_auth("stranger").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(h.seen().is_empty(), "verification never calls the upstream");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    // A port that was free a moment ago.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let metadata = ProtectedResource::new("http://127.0.0.1:1/mcp").unwrap().authorization_server("https://a.example");
    let gw = Gateway::builder(dead.parse().unwrap(), metadata, FakeVerifier).build().await.unwrap();
    let base = serve(gw.router()).await;
    let r = reqwest::Client::new().post(format!("{base}/mcp")).bearer_auth("writer").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn the_upstream_is_checked_against_the_ssrf_policy() {
    let metadata = || ProtectedResource::new("http://127.0.0.1:9000/mcp").unwrap();
    for refused in ["http://169.254.169.254/latest", "http://10.0.0.1/mcp", "http://[fe80::1]/mcp"] {
        let result = Gateway::builder(refused.parse().unwrap(), metadata(), FakeVerifier).build().await;
        assert!(matches!(result, Err(BuildError::Ssrf(_))), "{refused}: {result:?}");
    }
    let strict = Gateway::builder("http://127.0.0.1:3000/mcp".parse().unwrap(), metadata(), FakeVerifier)
        .ssrf_policy(SsrfPolicy::strict())
        .build()
        .await;
    assert!(matches!(strict, Err(BuildError::Ssrf(_))), "loopback and http only when allowed");
    let query =
        Gateway::builder("http://127.0.0.1:3000/mcp?x=1".parse().unwrap(), metadata(), FakeVerifier).build().await;
    assert!(matches!(query, Err(BuildError::Upstream(_))));
}

#[test]
fn the_command_refuses_to_run_without_a_way_to_verify_tokens() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_authflow"))
        .args(["gateway", "--upstream", "http://127.0.0.1:3000/mcp", "--listen", "127.0.0.1:0"])
        .args(["--issuer", "http://127.0.0.1:8000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--introspection-client-id"), "{stderr}");
}

#[tokio::test]
async fn a_root_resource_proxies_everything_but_the_gateways_own_routes() {
    let upstream = Upstream { seen: Arc::default(), second_event: Arc::new(Notify::new()) };
    let app = Router::new().route("/", post(record)).route("/{*rest}", post(record)).with_state(upstream.clone());
    let upstream_base = serve(app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let metadata = ProtectedResource::new(&gateway).unwrap().authorization_server("https://auth.example.com");
    let gw =
        Gateway::builder(format!("{upstream_base}/").parse().unwrap(), metadata, FakeVerifier).build().await.unwrap();
    let router = gw.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();

    assert_eq!(http.post(format!("{gateway}/")).bearer_auth("reader").send().await.unwrap().status(), 202);
    assert_eq!(http.post(format!("{gateway}/deep/path")).bearer_auth("reader").send().await.unwrap().status(), 202);
    let seen: Vec<String> = upstream.seen.lock().unwrap().requests.iter().map(|r| r.0.clone()).collect();
    assert_eq!(seen, ["/", "/deep/path"]);

    let r = http.get(format!("{gateway}/verify")).bearer_auth("reader").send().await.unwrap();
    assert_eq!(r.headers()["x-auth-subject"], "user-reader", "/verify stays the gateway's");
    let r = http.get(format!("{gateway}/.well-known/oauth-protected-resource")).send().await.unwrap();
    assert_eq!(r.status(), 200, "metadata needs no token");
    assert_eq!(upstream.seen.lock().unwrap().requests.len(), 2);
}

/// Friction control in front of the upstream: a client hammering a mutation tool is first asked for a
/// justification, then refused with an MCP tool error answering its request's id, which never reaches the
/// upstream; other clients are untouched, and `/friction` shows a caller its own levels.
#[tokio::test]
async fn a_hammered_mutation_tool_ends_up_blocked_with_an_mcp_tool_error() {
    let upstream = Upstream { seen: Arc::default(), second_event: Arc::new(Notify::new()) };
    let app = Router::new().route("/api/mcp", post(record)).with_state(upstream.clone());
    let upstream_base = serve(app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let metadata =
        ProtectedResource::new(&format!("{gateway}/mcp")).unwrap().authorization_server("https://auth.example.com");
    // Blocking only (no delays), and a short warm-up, so the test takes a few dozen calls.
    let config = FrictionConfig {
        mode: FrictionMode::Block,
        warmup_calls: 5,
        window_size: 20,
        tools: [("delete_note".to_owned(), 0.1)].into(),
        ..FrictionConfig::default()
    };
    let gw = Gateway::builder(format!("{upstream_base}/api/mcp").parse().unwrap(), metadata, FakeVerifier)
        .require_scopes(["notes:read"])
        .friction(FrictionController::new(config).unwrap())
        .build()
        .await
        .unwrap();
    let router = gw.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let call = |token: &'static str, id: u64, justification: Option<&str>| {
        let mut params = json!({"name": "delete_note", "arguments": {"id": id}});
        if let Some(text) = justification {
            params["_meta"] = json!({"justification": text});
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        http.post(format!("{gateway}/mcp")).bearer_auth(token).json(&body).send()
    };

    let (mut forwarded, mut justification_asked, mut blocked) = (0, false, None);
    for id in 1..=300u64 {
        // Justified once asked, so HIGH calls pass and friction keeps rising to BLOCKED.
        let r = call("writer", id, justification_asked.then_some("the user asked to clean up")).await.unwrap();
        if r.status() == 202 {
            forwarded += 1;
            continue;
        }
        assert_eq!(r.status(), 200, "a refusal is an MCP result, not an HTTP error");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["id"], id, "the refusal answers the same JSON-RPC id: {answer}");
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        assert!(answer["result"]["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{answer}");
        let friction = &answer["result"]["_meta"]["authflow/friction"];
        match friction["level"].as_str() {
            Some("HIGH") => justification_asked = true,
            Some("BLOCKED") => {
                assert!(friction["retry_after_secs"].as_u64().is_some_and(|s| s > 0), "{answer}");
                blocked = Some(id);
                break;
            }
            other => panic!("refused at level {other:?}: {answer}"),
        }
    }
    let blocked = blocked.expect("300 deletes in a row end up blocked");
    assert!(justification_asked, "a justification is asked for before the tool is blocked");
    assert!(forwarded > 5, "calls pass until friction builds up ({forwarded})");
    assert_eq!(upstream.seen.lock().unwrap().requests.len(), forwarded, "refused calls never reach the upstream");
    let r = call("writer", blocked + 1, Some("please")).await.unwrap();
    assert_eq!(r.status(), 200, "blocked stays blocked, justified or not");

    // Friction is per client: another user's delete goes through.
    assert_eq!(call("reader", 1, None).await.unwrap().status(), 202);

    // The status route needs a token and shows the caller its own levels.
    let r = http.get(format!("{gateway}/friction")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
    let status: Value =
        http.get(format!("{gateway}/friction")).bearer_auth("writer").send().await.unwrap().json().await.unwrap();
    let clients = status["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{status}");
    assert_eq!(
        (clients[0]["client_id"].as_str(), clients[0]["subject"].as_str()),
        (Some("client-1"), Some("user-writer"))
    );
    assert_eq!(clients[0]["tools"][0]["tool"], "delete_note");
    assert_eq!(clients[0]["tools"][0]["level"], "BLOCKED", "{status}");
    let status: Value =
        http.get(format!("{gateway}/friction")).bearer_auth("reader").send().await.unwrap().json().await.unwrap();
    assert_eq!(status["clients"][0]["subject"], "user-reader");
    assert_ne!(status["clients"][0]["tools"][0]["level"], "BLOCKED");
}

/// `authflow gateway --config FILE`: the `[gateway]` section stands in for the flags and `[friction]` is
/// validated before anything starts.
#[test]
fn the_command_reads_its_keys_and_friction_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let gateway_keys = "[gateway]\nupstream = \"http://127.0.0.1:3000/mcp\"\nissuer = \"http://127.0.0.1:8000\"\n\
                        listen = \"127.0.0.1:0\"\n";
    let run = |friction: &str| {
        std::fs::write(&path, format!("{gateway_keys}{friction}")).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_authflow"))
            .arg("gateway")
            .arg("--config")
            .arg(&path)
            .output();
        let output = output.unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let valid = "[friction]\nmode = \"both\"\n[friction.tools]\ndelete_note = 0.05\n[[friction.groups]]\n\
                 name = \"mutations\"\ntools = [\"create_note\", \"delete_note\"]\ntarget = 0.2\n";
    // Everything from the file is accepted; only a way to verify tokens is missing.
    let stderr = run(valid);
    assert!(stderr.contains("--introspection-client-id"), "{stderr}");
    let stderr = run("[friction.tools]\ndelete_note = 2.0\n");
    assert!(stderr.contains("[friction]"), "{stderr}");
    let stderr = run("[friction]\nmod = \"both\"\n");
    assert!(stderr.contains("invalid configuration"), "{stderr}");
}
