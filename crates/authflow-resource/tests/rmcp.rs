//! The `notes` example — an rmcp streamable-HTTP MCP server behind `BearerAuthLayer` — against authflow's
//! own authorization server, spoken to as an MCP client would: discovery from the 401, then JSON-RPC.

mod common;

#[allow(dead_code)]
#[path = "../examples/notes.rs"]
mod notes;

use std::net::SocketAddr;
use std::time::Duration;

use authflow_core::ClientAuthMethod;
use authflow_resource::{IntrospectionVerifier, ProtectedResource};
use common::{dev_http, As};
use serde_json::{json, Value};

const ACCEPT: &str = "application/json, text/event-stream";

struct Mcp {
    url: String,
    http: reqwest::Client,
    token: Option<String>,
    session: Option<String>,
}

impl Mcp {
    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self.http.post(&self.url).header("accept", ACCEPT).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        req
    }

    /// Send a JSON-RPC request and read its response, from JSON or from the SSE stream.
    async fn call(&self, id: u64, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut response = self.request(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let mut text = String::new();
        let read = async {
            while let Some(chunk) = response.chunk().await.unwrap() {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if let Some(found) = find_response(&text, id) {
                    return found;
                }
            }
            find_response(&text, id).unwrap_or_else(|| panic!("no response to {method} in {text:?}"))
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("the server answers")
    }

    async fn initialize(&mut self) {
        let params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "authflow-test", "version": "1"},
        });
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
        let response = self.request(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        self.session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        drop(response);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self.request(&initialized).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }

    async fn tool(&self, id: u64, name: &str, arguments: Value) -> (bool, String) {
        let result = self.call(id, "tools/call", json!({"name": name, "arguments": arguments})).await;
        let result = &result["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        (result["isError"] == json!(true), text)
    }
}

/// The JSON-RPC message with this id, in a JSON body or in SSE `data:` lines.
fn find_response(text: &str, id: u64) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return (v["id"] == json!(id)).then_some(v);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == json!(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_rmcp_server_lists_and_calls_tools_for_the_token_holder() {
    let a = As::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource_url = format!("{base}/mcp");

    let rs = a.resource_server(ClientAuthMethod::ClientSecretBasic, &resource_url).await;
    let verifier = IntrospectionVerifier::builder(a.url("/introspect").parse().unwrap(), resource_url.as_str())
        .client_secret_basic(&rs.0, &rs.1)
        .issuer(a.base.as_str())
        .http_client(dev_http())
        .clock(a.clock.clone())
        .build()
        .unwrap();
    let resource = ProtectedResource::new(&resource_url)
        .unwrap()
        .authorization_server(a.base.as_str())
        .scopes_supported(["notes:read", "notes:write"]);
    let app = notes::app(&resource, verifier, notes::NoteBook::default());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    // Without a token: 401 and the way to the authorization server.
    let mut anonymous = Mcp { url: resource_url.clone(), http: reqwest::Client::new(), token: None, session: None };
    let r = anonymous.request(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let prm = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!("Bearer scope=\"notes:read\", resource_metadata=\"{prm}\"")
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let metadata: Value = reqwest::get(&prm).await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], resource_url);
    assert_eq!(metadata["authorization_servers"], json!([a.base]));
    let as_metadata: Value =
        reqwest::get(format!("{}/.well-known/oauth-authorization-server", a.base)).await.unwrap().json().await.unwrap();
    assert!(as_metadata["token_endpoint"].is_string());

    // With a token for this resource: the MCP session works.
    let service = a.service_client().await;
    anonymous.token = Some(a.token(&service, "notes:read notes:write", &resource_url).await);
    let mut client = anonymous;
    client.initialize().await;
    assert!(client.session.is_some(), "a stateful session was created");
    let tools = client.call(2, "tools/list", json!({})).await;
    let mut names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["add_note", "list_notes", "whoami"]);

    // Tools see who is calling.
    let (error, text) = client.tool(3, "whoami", json!({})).await;
    assert!(!error);
    assert_eq!(text, format!("subject={0} client_id={0} scope=notes:read notes:write", service.0));
    assert_eq!(client.tool(4, "add_note", json!({"text": "buy milk"})).await, (false, "1 notes".to_owned()));
    assert_eq!(client.tool(5, "list_notes", json!({})).await, (false, "buy milk".to_owned()));

    // A read-only token reads but cannot write; notes are per principal.
    let reader_client = a
        .add_client(
            ClientAuthMethod::ClientSecretBasic,
            &[authflow_core::GrantType::ClientCredentials],
            "notes:read",
            &[],
        )
        .await;
    let mut reader = Mcp {
        url: resource_url.clone(),
        http: reqwest::Client::new(),
        token: Some(a.token(&reader_client, "notes:read", &resource_url).await),
        session: None,
    };
    reader.initialize().await;
    assert_eq!(reader.tool(6, "list_notes", json!({})).await, (false, String::new()));
    let (error, text) = reader.tool(7, "add_note", json!({"text": "x"})).await;
    assert!(error, "{text}");

    // A token for another resource is refused before rmcp sees the request.
    let other = a.token(&service, "notes:read", "https://other.example.com/mcp").await;
    let r = reqwest::Client::new()
        .post(&resource_url)
        .header("accept", ACCEPT)
        .bearer_auth(other)
        .json(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
}
