//! Friction control over real HTTP: an MCP endpoint behind `BearerAuthLayer` and `FrictionLayer`, with a
//! manual clock.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authflow_core::friction::{FrictionConfig, FrictionMode, Level};
use authflow_resource::clock::ManualClock;
use authflow_resource::{FrictionController, ProtectedResource, TokenVerifier, VerifiedToken, VerifyError};
use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use common::{send, serve, Reply, START};
use serde_json::{json, Value};

const RESOURCE: &str = "https://mcp.example.com/mcp";

/// `alice` and `bob` use the same MCP client app; `admin` may see everyone's friction.
#[derive(Debug)]
struct Tokens;

#[async_trait::async_trait]
impl TokenVerifier for Tokens {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let user =
            |sub: &str, scope: &str| VerifiedToken::new(sub).with_client_id("app").with_scope(scope.parse().unwrap());
        match token {
            "alice" => Ok(user("alice", "notes:read")),
            "bob" => Ok(user("bob", "notes:read")),
            "admin" => Ok(user("root", "notes:read friction:admin")),
            _ => Err(VerifyError::invalid("unknown token")),
        }
    }
}

/// The MCP server behind the layer: counts the requests that reach it and answers every one.
#[derive(Debug, Clone, Default)]
struct Server {
    reached: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Server {
    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }
}

struct App {
    base: String,
    server: Server,
    friction: FrictionController,
    clock: ManualClock,
}

fn config(mode: FrictionMode) -> FrictionConfig {
    let mut c = FrictionConfig { mode, max_delay_ms: 40, ..FrictionConfig::default() };
    c.tools.insert("delete_note".into(), 0.1);
    c
}

async fn start(config: FrictionConfig) -> App {
    let clock = ManualClock::new(START);
    let friction = FrictionController::new(config).unwrap().with_clock(clock.clone());
    let server = Server::default();
    let s = server.clone();
    let mcp = post(move |body: Bytes| {
        let s = s.clone();
        async move {
            s.reached.fetch_add(1, Ordering::SeqCst);
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            s.bodies.lock().unwrap().push(request.clone());
            let result = json!({"content": [{"type": "text", "text": "done"}]});
            axum::Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": result}))
        }
    });
    let resource = ProtectedResource::new(RESOURCE).unwrap();
    let router = Router::new()
        .route("/mcp", mcp.layer(friction.layer().max_body_bytes(64 * 1024)))
        .merge(friction.status_router())
        .layer(resource.bearer_auth(Tokens).require_scopes(["notes:read"]))
        .merge(resource.router());
    App { base: serve(router).await, server, friction, clock }
}

impl App {
    async fn post(&self, token: Option<&str>, body: &Value) -> Reply {
        let mut req = reqwest::Client::new().post(format!("{}/mcp", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    async fn call(&self, token: &str, id: Value, tool: &str, justification: Option<&str>) -> Reply {
        self.clock.advance(Duration::from_millis(500));
        let mut params = json!({"name": tool, "arguments": {"id": 1}});
        if let Some(j) = justification {
            params["_meta"] = json!({"justification": j});
        }
        self.post(Some(token), &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})).await
    }

    async fn status(&self, token: &str) -> Reply {
        send(reqwest::Client::new().get(format!("{}/friction", self.base)).bearer_auth(token)).await
    }

    async fn level(&self, sub: &str, tool: &str) -> Level {
        let token = VerifiedToken::new(sub).with_client_id("app");
        let status = self.friction.status_of(&token).await.unwrap();
        status.tools.iter().find(|t| &*t.tool == tool).unwrap().level
    }
}

fn is_tool_error(r: &Reply) -> bool {
    r.body["result"]["isError"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hammered_tool_is_blocked_with_a_tool_error_that_never_reaches_the_server() {
    let app = start(config(FrictionMode::Block)).await;
    let mut blocked = None;
    for n in 0..80 {
        let before = app.server.reached();
        // Alternate number and string ids: the refusal must echo each exactly.
        let id = if n % 2 == 0 { json!(n) } else { json!(format!("req-{n}")) };
        let r = app.call("alice", id.clone(), "delete_note", Some("cleaning up")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["id"], id);
        if is_tool_error(&r) {
            assert_eq!(app.server.reached(), before, "a refused call never reaches the server");
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.body["jsonrpc"], "2.0");
            let text = r.body["result"]["content"][0]["text"].as_str().unwrap();
            assert_eq!(r.body["result"]["content"][0]["type"], "text");
            assert!(text.contains("delete_note") && text.contains("Retry after"), "{text}");
            let meta = &r.body["result"]["_meta"]["authflow/friction"];
            assert_eq!(meta["level"], "BLOCKED");
            assert!(meta["retry_after_secs"].as_u64().unwrap() > 0);
            blocked.get_or_insert(n);
        } else {
            assert_eq!(app.server.reached(), before + 1);
            assert_eq!(r.body["result"]["content"][0]["text"], "done");
            assert!(blocked.is_none(), "stays blocked while hammered (call {n})");
        }
    }
    let first = blocked.expect("blocked");
    assert!((20..=55).contains(&first), "blocked at call {first}");
    assert_eq!(app.level("alice", "delete_note").await, Level::Blocked);
    // Bob uses the same client app but is another client: unaffected.
    let r = app.call("bob", json!(1), "delete_note", None).await;
    assert!(!is_tool_error(&r), "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tools_and_other_messages_pass() {
    let app = start(config(FrictionMode::Block)).await;
    for n in 0..150 {
        let r = app.call("alice", json!(n), "list_notes", None).await;
        assert_eq!((r.status, r.body["result"]["content"][0]["text"].as_str()), (200, Some("done")));
    }
    assert_eq!(app.server.reached(), 150);
    // Other methods, notifications (even of tools/call), responses and non-JSON bodies go through untouched.
    for body in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_note"}}),
        json!({"jsonrpc": "2.0", "id": 2, "result": {}}),
        json!([{"jsonrpc": "2.0", "id": 3, "method": "ping"}]),
        json!("not a message"),
    ] {
        let r = app.post(Some("alice"), &body).await;
        assert_eq!(r.status, 200);
        assert!(!is_tool_error(&r));
    }
    assert_eq!(app.server.reached(), 156);
    // The bodies arrive byte for byte.
    assert_eq!(app.server.bodies.lock().unwrap()[150], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(app.level("alice", "delete_note").await, Level::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_bearer_layer_answers_and_friction_records_nothing() {
    let app = start(config(FrictionMode::Block)).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_note"}});
    for _ in 0..40 {
        let r = app.post(None, &call).await;
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some());
    }
    assert_eq!(app.server.reached(), 0);
    let r = app.post(Some("forged"), &call).await;
    assert_eq!(r.status, 401);
    assert_eq!(send(reqwest::Client::new().get(format!("{}/friction", app.base))).await.status, 401);
    let admin = app.status("admin").await;
    assert_eq!(admin.body["clients"], json!([]), "no client state was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_justification_lets_a_high_call_through() {
    let app = start(config(FrictionMode::Block)).await;
    let mut n = 0;
    while app.level("alice", "delete_note").await < Level::High {
        let r = app.call("alice", json!(n), "delete_note", Some("migrating notes")).await;
        assert!(!is_tool_error(&r), "justified calls pass below BLOCKED: {:?}", r.body);
        n += 1;
        assert!(n < 60);
    }
    // HIGH without a justification: refused with a tool error asking for one.
    let before = app.server.reached();
    let r = app.call("alice", json!("no-reason"), "delete_note", None).await;
    assert!(is_tool_error(&r), "{:?}", r.body);
    assert_eq!(r.body["id"], "no-reason");
    let text = r.body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("justification"), "{text}");
    assert_eq!(r.body["result"]["_meta"]["authflow/friction"]["reason"]["reason"], "justification_required");
    assert_eq!(app.server.reached(), before);
    assert_eq!(app.level("alice", "delete_note").await, Level::High);
    // A blank one does not count.
    let r = app.call("alice", json!(1), "delete_note", Some("   ")).await;
    assert!(is_tool_error(&r));
    assert_eq!(app.level("alice", "delete_note").await, Level::High);

    // With one (in `_meta` or as an argument), the call goes through, unchanged.
    let r = app.call("alice", json!(2), "delete_note", Some("the user asked to delete these notes")).await;
    assert!(!is_tool_error(&r), "{:?}", r.body);
    assert_eq!(app.server.reached(), before + 1);
    let last = app.server.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["params"]["_meta"]["justification"], "the user asked to delete these notes");
    if app.level("alice", "delete_note").await == Level::High {
        app.clock.advance(Duration::from_millis(500));
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "delete_note", "arguments": {"justification": "bulk clean-up requested"}}});
        let r = app.post(Some("alice"), &body).await;
        assert!(!is_tool_error(&r), "{:?}", r.body);
        assert_eq!(app.server.reached(), before + 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_route_shows_only_the_callers_own_levels() {
    let app = start(config(FrictionMode::Block)).await;
    for n in 0..60 {
        app.call("alice", json!(n), "delete_note", Some("why not")).await;
    }
    for n in 0..30 {
        app.call("bob", json!(n), "list_notes", None).await;
    }
    let r = app.status("alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let clients = r.body["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{:?}", r.body);
    assert_eq!((clients[0]["client_id"].as_str(), clients[0]["subject"].as_str()), (Some("app"), Some("alice")));
    assert_eq!(clients[0]["calls"], 60);
    let tool = &clients[0]["tools"][0];
    assert_eq!((tool["tool"].as_str(), tool["level"].as_str()), (Some("delete_note"), Some("BLOCKED")));
    assert!(tool["friction"].as_f64().unwrap() >= 0.95 && tool["ema"].as_f64().unwrap() > 0.9);
    assert_eq!(tool["target"], 0.1);
    assert!(!r.body.to_string().contains("bob"), "no other client's state");

    let r = app.status("bob").await;
    let clients = r.body["clients"].as_array().unwrap();
    assert_eq!((clients.len(), clients[0]["subject"].as_str()), (1, Some("bob")));
    assert_eq!(clients[0]["tools"][0]["level"], "NONE");
    assert!(!r.body.to_string().contains("alice"));

    // A client never seen gets its tools at rest; the admin scope sees everyone in memory.
    let r = app.status("admin").await;
    let subjects: Vec<&str> =
        r.body["clients"].as_array().unwrap().iter().filter_map(|c| c["subject"].as_str()).collect();
    assert_eq!(subjects, ["bob", "alice"], "most recent first");

    // Idle decay shows without any call.
    app.clock.advance(Duration::from_secs(3600));
    let r = app.status("alice").await;
    assert_eq!(r.body["clients"][0]["tools"][0]["level"], "NONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_tool_calls_and_oversized_bodies_are_refused() {
    let app = start(config(FrictionMode::Block)).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_notes"}}
    ]);
    let r = app.post(Some("alice"), &batch).await;
    assert_eq!(r.status, 200);
    assert_eq!((r.body["error"]["code"].as_i64(), &r.body["id"]), (Some(-32600), &Value::Null));
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_notes", "arguments": {"text": "x".repeat(70 * 1024)}}});
    assert_eq!(app.post(Some("alice"), &big).await.status, 413);
    // Chunked, without a Content-Length: refused once the limit is crossed.
    assert_eq!(chunked_post(&app.base, &[&[b' '; 40 * 1024], &[b' '; 40 * 1024]]).await, "413");
    assert_eq!(app.server.reached(), 0);
    // A small chunked body is read whole and forwarded.
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes"}}"#;
    assert_eq!(chunked_post(&app.base, &[&call[..10], &call[10..]]).await, "200");
    assert_eq!(app.server.reached(), 1);
}

/// POST `chunks` to `/mcp` with `Transfer-Encoding: chunked` as alice, over a raw socket; the status code.
async fn chunked_post(base: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (and stop reading) before everything is written.
    let _ = socket.write_all(&request).await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    response.split(' ').nth(1).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_mode_delays_the_call_by_the_computed_delay_and_never_refuses() {
    let app = start(config(FrictionMode::Latency)).await;
    let mut delayed = 0;
    for n in 0..60 {
        let started = tokio::time::Instant::now();
        let r = app.call("alice", json!(n), "delete_note", None).await;
        let elapsed = started.elapsed();
        assert!(!is_tool_error(&r), "latency mode never refuses: {:?}", r.body);
        // The delay the controller decided for this call (no time passed since: the clock is manual).
        let token = VerifiedToken::new("alice").with_client_id("app");
        let friction = app.friction.status_of(&token).await.unwrap().tools[0].friction;
        let expected = Duration::from_millis((friction * 40.0).round() as u64);
        // A lower bound only: sleeping never ends early, and wall-clock upper bounds would be flaky.
        assert!(elapsed >= expected, "call {n}: {elapsed:?} < {expected:?}");
        if !expected.is_zero() {
            delayed += 1;
        }
    }
    assert!(delayed > 20, "{delayed}");
    assert_eq!(app.server.reached(), 60);
}
