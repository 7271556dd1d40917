//! The servers under test, in this process: the authorization server on the chosen backend, and a
//! resource server with one rmcp MCP server (streamable HTTP, stateless, one tool) mounted twice: at `/mcp`
//! behind `BearerAuthLayer` and at `/open/mcp` without it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::pkce::{CodeChallenge, CodeChallengeMethod, CodeVerifier};
use authflow_core::ratelimit::RateLimit;
use authflow_core::ssrf::SsrfPolicy;
use authflow_core::token::grant_id;
use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind};
use authflow_resource::{BearerAuthLayer, IntrospectionVerifier, SafeHttpClient, TokenVerifier};
use authflow_server::{AuthServer, Clock, OsEntropy, Policy, SystemClock};
use authflow_store::{AuthorizationCode, Client, ClientMetadata, ClientOrigin, Grant, Store};
use axum::http::{header, Request, StatusCode};
use axum::routing::any_service;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use serde_json::Value;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::scenarios::Scenario;
use crate::Error;

/// The MCP server the tokens are for.
pub const RESOURCE: &str = "http://127.0.0.1/mcp";
/// Where the pre-minted codes were sent.
pub const REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";
const USER: &str = "bench-user";

/// Which storage the authorization server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// In-process maps; nothing is durable.
    Memory,
    /// An embedded SQLite file in a temporary directory (WAL, as `authflow serve`).
    Sqlite,
    /// A fresh schema on `AUTHFLOW_TEST_POSTGRES_URL`, dropped afterwards.
    Postgres,
}

type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Everything the scenarios need: addresses, credentials, tokens, codes.
pub struct Stack {
    /// The authorization server.
    pub auth: SocketAddr,
    /// The resource server (`/mcp` protected, `/open/mcp` not).
    pub resource: SocketAddr,
    /// `Authorization` value of the resource server's own client (introspection).
    pub resource_basic: String,
    /// `Authorization` value of a client_credentials service client.
    pub service_basic: String,
    /// A live opaque access token for [`RESOURCE`].
    pub access_token: String,
    /// The public client the codes were issued to.
    pub app_client_id: String,
    /// The PKCE verifier of every pre-minted code.
    pub code_verifier: String,
    /// Pre-minted authorization codes, each usable once.
    pub codes: Arc<CodeBank>,
    teardown: Option<Teardown>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("auth", &self.auth).field("resource", &self.resource).finish_non_exhaustive()
    }
}

/// Authorization codes in clear text (the store holds only their hashes), handed out once each.
#[derive(Debug, Default)]
pub struct CodeBank {
    codes: Vec<String>,
    next: AtomicUsize,
}

impl CodeBank {
    /// The next unused code.
    pub fn take(&self) -> Option<&str> {
        self.codes.get(self.next.fetch_add(1, Ordering::Relaxed)).map(String::as_str)
    }
}

async fn open(backend: Backend) -> Result<(Arc<dyn Store>, Option<Teardown>), Error> {
    // The same pool size as `authflow serve` (OpenOptions::default()).
    let options = authflow_store::OpenOptions::default();
    Ok(match backend {
        Backend::Memory => (Arc::new(authflow_store::MemoryStore::new()), None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("authflow.db").display());
            let store = authflow_store::open(&url, &options).await?;
            (store, Some(Box::pin(async move { drop(dir) }) as Teardown))
        }
        Backend::Postgres => {
            let (schema, connect, teardown) = authflow_store::fixtures::fresh_schema().await;
            let connect = connect.options([("search_path", schema.as_str())]);
            let store = authflow_store::postgres::PostgresStore::connect_with(connect, options.max_connections).await;
            let store = match store {
                Ok(store) => store,
                Err(e) => {
                    teardown.await;
                    return Err(e.into());
                }
            };
            if let Err(e) = store.migrate().await {
                teardown.await;
                return Err(e.into());
            }
            (Arc::new(store), Some(Box::pin(teardown) as Teardown))
        }
    })
}

/// Serve `router` on `listener` as `authflow serve` does: `TCP_NODELAY`, peer addresses for the
/// per-address rate limits.
fn serve(listener: TcpListener, router: Router) -> Result<SocketAddr, Error> {
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

fn basic(id: &str, secret: &str) -> String {
    authflow_resource::introspection::basic_credentials(id, secret)
}

async fn add_client(
    store: &dyn Store,
    id: &str,
    method: ClientAuthMethod,
    grants: &[GrantType],
    resources: &[&str],
) -> Result<Option<String>, Error> {
    let now = SystemClock.now();
    let secret =
        (method != ClientAuthMethod::None).then(|| SecretToken::generate(TokenKind::ClientSecret, now, &mut OsEntropy));
    let client = Client {
        client_id: id.to_owned(),
        secret_hash: secret.as_ref().map(SecretToken::hash),
        registration_token_hash: None,
        metadata: ClientMetadata {
            client_name: Some(id.to_owned()),
            redirect_uris: if grants.contains(&GrantType::AuthorizationCode) {
                vec![REDIRECT_URI.to_owned()]
            } else {
                vec![]
            },
            grant_types: grants.to_vec(),
            token_endpoint_auth_method: method,
            scope: Some(Scope::parse("notes:read notes:write")?),
            resources: resources.iter().map(|r| r.to_string()).collect(),
            jwks: None,
            jwks_uri: None,
            extra: Default::default(),
        },
        origin: ClientOrigin::Admin,
        created_at: now,
        expires_at: None,
        disabled: false,
    };
    store.insert_client(&client).await?;
    Ok(secret.map(|s| s.expose().to_owned()))
}

/// Insert `n` codes for `client_id` (a grant each, as the authorization endpoint makes), hashes only.
async fn mint_codes(store: Arc<dyn Store>, client_id: &str, challenge: &str, n: usize) -> Result<Vec<String>, Error> {
    const TASKS: usize = 8;
    let now = SystemClock.now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, client_id, challenge) = (store.clone(), client_id.to_owned(), challenge.to_owned());
        let count = n / TASKS + usize::from(t < n % TASKS);
        tasks.spawn(async move {
            let mut codes = Vec::with_capacity(count);
            for _ in 0..count {
                let grant = Grant {
                    id: grant_id(now, &mut OsEntropy),
                    client_id: client_id.clone(),
                    subject: Some(USER.to_owned()),
                    created_at: now,
                    expires_at: now + Duration::from_secs(90 * 24 * 3600),
                    revoked_at: None,
                };
                store.insert_grant(&grant).await?;
                let code = SecretToken::generate(TokenKind::AuthorizationCode, now, &mut OsEntropy);
                store
                    .insert_code(&AuthorizationCode {
                        code_hash: code.hash(),
                        grant_id: grant.id,
                        client_id: client_id.clone(),
                        subject: USER.to_owned(),
                        redirect_uri: REDIRECT_URI.to_owned(),
                        scope: Some(Scope::parse("notes:read")?),
                        resources: vec![RESOURCE.to_owned()],
                        code_challenge: challenge.clone(),
                        code_challenge_method: CodeChallengeMethod::S256,
                        nonce: None,
                        auth_time: now,
                        issued_at: now,
                        expires_at: now + Duration::from_secs(3600),
                    })
                    .await?;
                codes.push(code.expose().to_owned());
            }
            Ok::<_, Error>(codes)
        });
    }
    let mut codes = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        codes.extend(done.map_err(|e| format!("minting codes failed: {e}"))??);
    }
    Ok(codes)
}

/// The one tool of the MCP server, and what it answers.
pub const TOOL: &str = "list_notes";
/// The text [`TOOL`] answers with.
pub const TOOL_TEXT: &str = "3 notes";

/// The MCP server under test: one tool with a fixed answer, the cheapest a tool can be, so what the
/// scenarios measure is rmcp's streamable-HTTP handling (and, at `/mcp`, the bearer-token layer).
#[derive(Debug, Clone)]
struct BenchTools {
    /// Built once and shared: in stateless mode rmcp makes a server per request.
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl BenchTools {
    fn new() -> Self {
        BenchTools { tool_router: Arc::new(Self::tool_router()) }
    }

    #[tool(description = "List your notes (a fixed answer: the benchmark's cheapest tool)")]
    async fn list_notes(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(TOOL_TEXT)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BenchTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The streamable-HTTP service both `/mcp` and `/open/mcp` serve, configured for one POST per call:
/// stateless (no `initialize`, no session: the current protocol negotiates per request, in `_meta` and
/// the `MCP-Protocol-Version` header, and the service insists on both), answered with plain JSON rather
/// than an SSE stream, for `Host: 127.0.0.1:<port>` (rmcp refuses other hosts, against DNS rebinding).
fn mcp_service() -> StreamableHttpService<BenchTools, NeverSessionManager> {
    let server = BenchTools::new();
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_stateless_protocol_metadata_required(true)
            .with_allowed_hosts(["127.0.0.1"]),
    )
}

/// A limit no benchmark reaches: the limiter still runs on every request, it just never refuses.
fn unlimited() -> RateLimit {
    RateLimit::new(u32::MAX, Duration::from_secs(1)).unwrap_or_else(|e| unreachable!("a constant limit: {e}"))
}

impl Stack {
    /// Open the backend, register the clients, mint `codes` codes, start both servers and warm the
    /// resource server's introspection cache.
    pub async fn start(backend: Backend, codes: usize) -> Result<Stack, Error> {
        let (store, teardown) = open(backend).await?;
        let mut stack = Stack {
            auth: SocketAddr::from(([127, 0, 0, 1], 0)),
            resource: SocketAddr::from(([127, 0, 0, 1], 0)),
            resource_basic: String::new(),
            service_basic: String::new(),
            access_token: String::new(),
            app_client_id: "bench-app".to_owned(),
            code_verifier: String::new(),
            codes: Arc::default(),
            teardown,
            store: store.clone(),
        };
        // Any failure from here on still drops the PostgreSQL schema: the caller calls `stop`.
        match stack.populate(codes).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    async fn populate(&mut self, codes: usize) -> Result<(), Error> {
        let store = self.store.clone();
        let rs = add_client(
            &*store,
            "bench-rs",
            ClientAuthMethod::ClientSecretBasic,
            &[GrantType::ClientCredentials],
            &[RESOURCE],
        )
        .await?
        .ok_or("no secret")?;
        let svc =
            add_client(&*store, "bench-svc", ClientAuthMethod::ClientSecretBasic, &[GrantType::ClientCredentials], &[])
                .await?
                .ok_or("no secret")?;
        add_client(
            &*store,
            &self.app_client_id,
            ClientAuthMethod::None,
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            &[],
        )
        .await?;
        self.resource_basic = basic("bench-rs", &rs);
        self.service_basic = basic("bench-svc", &svc);

        let verifier = CodeVerifier::generate(&mut OsEntropy);
        let challenge = CodeChallenge::s256(&verifier);
        self.code_verifier = verifier.expose().to_owned();
        let minted = mint_codes(store.clone(), &self.app_client_id, challenge.as_str(), codes).await?;
        self.codes = Arc::new(CodeBank { codes: minted, next: AtomicUsize::new(0) });

        // The authorization server, with limits out of the way.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let auth = listener.local_addr()?;
        let policy = Policy {
            token_requests_per_ip: unlimited(),
            introspection_requests_per_ip: unlimited(),
            ..Policy::default()
        };
        let server = AuthServer::builder(format!("http://{auth}").parse()?, store.clone())
            .scopes(vec!["notes:read".into(), "notes:write".into()])
            .policy(policy)
            .build()?;
        self.auth = serve(listener, server.router())?;

        // One access token for the resource, by the real token endpoint.
        self.access_token = client_credentials_token(self.auth, &self.service_basic).await?;

        // The resource server, verifying by introspection at the authorization server.
        let http = SafeHttpClient::builder(SsrfPolicy::development()).timeout(Duration::from_secs(5)).build()?;
        let verifier = IntrospectionVerifier::builder(format!("http://{}/introspect", self.auth).parse()?, RESOURCE)
            .client_secret_basic("bench-rs", rs)
            .http_client(http)
            .cache_max_ttl(Duration::from_secs(3600))
            .build()?;
        let warm = verifier.verify(&self.access_token).await.map_err(|e| format!("the token does not verify: {e}"))?;
        debug_assert_eq!(warm.client_id.as_deref(), Some("bench-svc"));
        let layer = BearerAuthLayer::new(verifier, "http://127.0.0.1/.well-known/oauth-protected-resource/mcp")
            .require_scopes(["notes:read"]);
        // The same service on both paths: the only difference is the layer.
        let mcp = mcp_service();
        let router = Router::new()
            .route("/mcp", any_service(mcp.clone()).layer(layer))
            .route("/open/mcp", any_service(mcp))
            .layer(RequestBodyLimitLayer::new(64 * 1024));
        self.resource = serve(TcpListener::bind("127.0.0.1:0").await?, router)?;

        // Both scenarios' requests, once each: the tool's answer, not an error (the load client only
        // looks at the status).
        for scenario in [Scenario::ToolsCall, Scenario::ToolsCallOpen] {
            let (addr, make) = crate::scenarios::against(self, scenario);
            let request = make().ok_or("no tools/call request")?;
            let path = request.uri().path().to_owned();
            let (status, content_type, body) = send_once(addr, request).await?;
            check_tools_call(status, &content_type, &body).map_err(|why| {
                format!(
                    "the rmcp tools/call at {path} does not answer with the tool's result ({why}): {status} \
                     {content_type:?} {}",
                    String::from_utf8_lossy(&body[..body.len().min(500)])
                )
            })?;
        }
        Ok(())
    }

    /// Drop what the backend keeps (the PostgreSQL schema, the SQLite directory).
    pub async fn stop(&mut self) {
        if let Some(teardown) = self.teardown.take() {
            teardown.await;
        }
    }
}

/// One request on a connection of its own, through the load client's own HTTP stack: the status, the
/// `Content-Type` and the body.
async fn send_once(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<(StatusCode, String, Bytes), Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
    driver.abort();
    Ok((status, content_type, body))
}

/// One client_credentials token for [`RESOURCE`].
async fn client_credentials_token(auth: SocketAddr, basic: &str) -> Result<String, Error> {
    let (status, _, body) =
        send_once(auth, crate::scenarios::client_credentials(auth, basic)().ok_or("no request")?).await?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| format!("token response ({status}): {e}"))?;
    body["access_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no access token ({status}): {body}").into())
}

/// Whether a `tools/call` answer is `200 OK`, one JSON document (not an SSE stream) and a JSON-RPC result
/// (not an error) whose content is [`TOOL_TEXT`]; if not, why not.
fn check_tools_call(status: StatusCode, content_type: &str, body: &[u8]) -> Result<(), &'static str> {
    if status != StatusCode::OK {
        return Err("not 200 OK");
    }
    if !content_type.starts_with("application/json") {
        return Err("not application/json");
    }
    let body: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    if body.get("error").is_some() {
        return Err("a JSON-RPC error");
    }
    let result = body.get("result").ok_or("no JSON-RPC result")?;
    if result.get("isError") == Some(&Value::Bool(true)) {
        return Err("a tool error");
    }
    match result.pointer("/content/0/text") {
        Some(Value::String(text)) if text == TOOL_TEXT => Ok(()),
        _ => Err("not the tool's text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/json";

    #[test]
    fn the_check_wants_the_tools_json_result() {
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"3 notes"}],"isError":false}}"#;
        assert_eq!(check_tools_call(StatusCode::OK, JSON, ok), Ok(()));
        assert!(check_tools_call(StatusCode::BAD_REQUEST, JSON, ok).is_err());
        assert!(check_tools_call(StatusCode::OK, "text/event-stream", ok).is_err());
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"missing _meta"}}"#;
        assert_eq!(check_tools_call(StatusCode::OK, JSON, error), Err("a JSON-RPC error"));
        let tool_error =
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"3 notes"}],"isError":true}}"#;
        assert_eq!(check_tools_call(StatusCode::OK, JSON, tool_error), Err("a tool error"));
        let other = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"no notes"}]}}"#;
        assert_eq!(check_tools_call(StatusCode::OK, JSON, other), Err("not the tool's text"));
    }

    /// The memory stack starts, which includes both routes answering the scenarios' rmcp `tools/call`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_stack_serves_the_rmcp_tool_on_both_paths() {
        let mut stack = Stack::start(Backend::Memory, 0).await.expect("the stack starts");
        // Without a token, only the open path answers.
        for (scenario, expected) in
            [(Scenario::ToolsCall, StatusCode::UNAUTHORIZED), (Scenario::ToolsCallOpen, StatusCode::OK)]
        {
            let (addr, make) = crate::scenarios::against(&stack, scenario);
            let mut request = make().expect("a request");
            request.headers_mut().remove(header::AUTHORIZATION);
            let (status, _, body) = send_once(addr, request).await.expect("an answer");
            assert_eq!(status, expected, "{scenario:?}");
            if expected == StatusCode::OK {
                assert_eq!(check_tools_call(status, JSON, &body), Ok(()));
            }
        }
        stack.stop().await;
    }
}
