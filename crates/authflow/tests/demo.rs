//! `authflow demo` as a user runs it: the banner, the discovery chain an MCP client follows, per-tool
//! scopes, the friction status route, a restart that keeps the credentials, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Demo {
    child: Child,
    lines: Vec<String>,
}

impl Demo {
    fn start(data_dir: &Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authflow"))
            .args(["demo", "--listen-auth", "127.0.0.1:0", "--listen-mcp", "127.0.0.1:0"])
            .env("AUTHFLOW_DEMO_DATA_DIR", data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Keep draining after the test stopped listening: a closed pipe would fail the server's writes.
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.contains("Ctrl-C stops")) {
            lines.push(rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no banner: {lines:?}")));
        }
        Demo { child, lines }
    }

    fn value(&self, label: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in {:?}", self.lines))
    }

    /// SIGTERM, then the exit status (within ten seconds).
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the demo did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ACCEPT: &str = "application/json, text/event-stream";

/// A bare-bones MCP client over streamable HTTP, to exercise scopes with hand-made tokens.
struct Mcp {
    url: String,
    token: String,
    session: Option<String>,
    http: reqwest::Client,
}

impl Mcp {
    async fn post(&self, body: Value) -> reqwest::Response {
        let mut request = self.http.post(&self.url).header("accept", ACCEPT).bearer_auth(&self.token).json(&body);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18");
        }
        request.send().await.unwrap()
    }

    async fn initialize(&mut self) {
        let params =
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
        let r = self.post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})).await;
        assert_eq!(r.status(), 200);
        self.session = r.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        assert!(self.session.is_some(), "a stateful MCP session was created");
        let r = self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert!(r.status().is_success());
    }

    /// Send a request and read the JSON-RPC message answering it.
    async fn request(&self, id: u64, method: &str, params: Value) -> Value {
        let r = self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        // The answer is one SSE `data:` line (or a JSON body).
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v["id"] == json!(id))
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| panic!("no answer in {text:?}"))
    }

    /// Call a tool: (is_error, text).
    async fn tool(&self, id: u64, name: &str, arguments: Value) -> (bool, String) {
        let message = self.request(id, "tools/call", json!({"name": name, "arguments": arguments})).await;
        let result = &message["result"];
        (result["isError"] == json!(true), result["content"][0]["text"].as_str().unwrap_or_default().to_owned())
    }
}

/// A client_credentials token for `resource` with `scope`, from a client registered on the fly.
async fn token(http: &reqwest::Client, issuer: &str, resource: &str, scope: &str) -> String {
    let registration: Value = http
        .post(format!("{issuer}/register"))
        .json(&json!({
            "client_name": "scope test",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "notes:read notes:write",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (registration["client_id"].as_str().unwrap(), registration["client_secret"].as_str().unwrap());
    let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", resource)];
    let r = http.post(format!("{issuer}/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_owned()
}

#[tokio::test]
async fn the_demo_is_ready_for_an_mcp_client_and_enforces_scopes_per_tool() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let mcp_url = demo.value("MCP URL:");
    let issuer = demo.value("authorization server:");
    assert_eq!(demo.value("username:"), "demo");
    assert!(demo.lines.iter().any(|l| l.trim() == format!("claude mcp add --transport http notes {mcp_url}")));
    let http = reqwest::Client::new();

    // What an MCP client does first: a 401 pointing at the metadata, which points at the issuer, and naming
    // both scopes, so the client asks for write access too (only notes:read is required on every call).
    let r = http.post(&mcp_url).header("accept", ACCEPT).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", mcp_url.trim_end_matches("/mcp"));
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer scope=\"notes:read notes:write\", resource_metadata=\"{metadata_url}\"").as_str()
    );
    let r = http.post(&mcp_url).header("accept", ACCEPT).bearer_auth("af_at_forged").json(&json!({})).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 401, "an unknown token never reaches the MCP server");
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
    let metadata: Value = http.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], mcp_url);
    assert_eq!(metadata["authorization_servers"], json!([issuer]));
    assert_eq!(metadata["scopes_supported"], json!(["notes:read", "notes:write"]));
    let as_metadata: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_metadata["issuer"], issuer);
    assert!(as_metadata["registration_endpoint"].is_string(), "open dynamic registration");
    assert!(as_metadata["scopes_supported"].as_array().unwrap().contains(&json!("notes:write")));

    // Tokens are bound to the MCP URL: one for another resource is refused by the authorization server.
    let registration: Value = http
        .post(format!("{issuer}/register"))
        .json(&json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = [("grant_type", "client_credentials"), ("resource", "http://127.0.0.1:1/elsewhere")];
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth(registration["client_id"].as_str().unwrap(), registration["client_secret"].as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "only the demo's MCP server is a known resource");

    // A read-only token reads, and every mutation names the scope it lacks.
    let mut reader = Mcp {
        url: mcp_url.clone(),
        token: token(&http, &issuer, &mcp_url, "notes:read").await,
        session: None,
        http: http.clone(),
    };
    reader.initialize().await;
    let tools = reader.request(100, "tools/list", json!({})).await;
    let mut names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["create_note", "delete_note", "get_note", "list_notes", "update_note"]);
    assert_eq!(reader.tool(1, "list_notes", json!({})).await, (false, "[]".to_owned()));
    for (id, tool, arguments) in [
        (2, "create_note", json!({"title": "t", "body": "b"})),
        (3, "update_note", json!({"id": 1, "title": "t"})),
        (4, "delete_note", json!({"id": 1})),
    ] {
        let (error, text) = reader.tool(id, tool, arguments).await;
        assert!(error, "{tool}: {text}");
        assert!(text.contains("insufficient_scope") && text.contains("notes:write"), "{tool}: {text}");
    }

    // A writer writes; notes belong to the token's principal.
    let mut writer = Mcp {
        url: mcp_url.clone(),
        token: token(&http, &issuer, &mcp_url, "notes:read notes:write").await,
        session: None,
        http,
    };
    writer.initialize().await;
    let (error, created) = writer.tool(5, "create_note", json!({"title": "milk", "body": "buy milk"})).await;
    assert!(!error, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_i64().unwrap();
    let (_, updated) = writer.tool(6, "update_note", json!({"id": id, "body": "buy oat milk"})).await;
    assert_eq!(serde_json::from_str::<Value>(&updated).unwrap()["body"], "buy oat milk");
    let (_, got) = writer.tool(7, "get_note", json!({"id": id})).await;
    assert_eq!(serde_json::from_str::<Value>(&got).unwrap()["title"], "milk");
    assert_eq!(
        reader.tool(8, "get_note", json!({"id": id})).await,
        (true, format!("no note {id}")),
        "not the reader's"
    );
    assert_eq!(writer.tool(9, "delete_note", json!({"id": id})).await, (false, format!("deleted note {id}")));
    assert_eq!(writer.tool(10, "list_notes", json!({})).await, (false, "[]".to_owned()));

    // The friction status route needs a token and shows each caller only its own levels: the mutation
    // tools, which the demo puts under friction control.
    let friction_url = format!("{}/friction", mcp_url.trim_end_matches("/mcp"));
    let r = writer.http.get(&friction_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
    let mut seen = Vec::new();
    for mcp in [&reader, &writer] {
        let r = mcp.http.get(&friction_url).bearer_auth(&mcp.token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let status: Value = r.json().await.unwrap();
        let clients = status["clients"].as_array().unwrap();
        assert_eq!(clients.len(), 1, "only the caller's own entry: {status}");
        assert_eq!(clients[0]["calls"], 5, "every tools/call counts, refused or not: {status}");
        let mut tools: Vec<&str> =
            clients[0]["tools"].as_array().unwrap().iter().filter_map(|t| t["tool"].as_str()).collect();
        tools.sort_unstable();
        assert_eq!(tools, ["create_note", "delete_note", "update_note"], "{status}");
        seen.push(clients[0]["client_id"].clone());
    }
    assert_ne!(seen[0], seen[1], "reader and writer each see themselves");

    assert!(demo.terminate().success(), "SIGTERM stops the demo cleanly, open MCP sessions included");
}

#[test]
fn a_restart_keeps_the_demo_user_and_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let first = Demo::start(dir.path());
    let password = first.value("password:");
    assert!(first.lines.iter().any(|l| l.contains("created now")));
    assert!(password.len() >= 20, "{password}");
    assert!(first.terminate().success());

    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-user.json")).unwrap()).unwrap();
    assert_eq!(credentials["password"], password.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo-user.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the password file");
    }

    let second = Demo::start(dir.path());
    assert_eq!(second.value("password:"), password);
    assert!(second.lines.iter().any(|l| l.contains("kept from an earlier run")));
}
