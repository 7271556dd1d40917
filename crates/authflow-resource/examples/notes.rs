//! A notes MCP server (rmcp, streamable HTTP) protected by authflow in a few lines.
//!
//! Start an authorization server and register this resource server as a confidential client allowed to
//! introspect tokens for it, then run the example:
//!
//! ```sh
//! authflow serve &                                        # http://127.0.0.1:8000
//! authflow client add --name notes-rs --resource http://127.0.0.1:3000/mcp   # prints client_id, client_secret
//! NOTES_CLIENT_ID=… NOTES_CLIENT_SECRET=… \
//!   cargo run -p authflow-resource --features rmcp --example notes
//! ```
//!
//! An MCP client pointed at `http://127.0.0.1:3000/mcp` gets a 401 naming
//! `/.well-known/oauth-protected-resource/mcp`, discovers the authorization server there, signs in and
//! calls the tools with its token. Each tool sees who is calling through its `VerifiedToken` argument.
//!
//! Environment: `AUTHFLOW_ISSUER` (default `http://127.0.0.1:8000`), `NOTES_LISTEN` (default
//! `127.0.0.1:3000`), `NOTES_RESOURCE` (default `http://<listen>/mcp`), `NOTES_CLIENT_ID`,
//! `NOTES_CLIENT_SECRET`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authflow_core::ssrf::SsrfPolicy;
use authflow_resource::{
    IntrospectionVerifier, ProtectedResource, RequestLogLayer, SafeHttpClient, TokenVerifier, TrailingSlashLayer,
    VerifiedToken,
};
use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler};
use tower::Layer;

/// Notes per principal (the token's subject, or its client for client-credentials tokens).
#[derive(Debug, Clone, Default)]
pub struct NoteBook(Arc<Mutex<HashMap<String, Vec<String>>>>);

/// The arguments of `add_note`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddNote {
    /// The note's text.
    pub text: String,
}

/// The MCP server: three tools over a shared notebook.
#[derive(Debug, Clone)]
pub struct Notes {
    book: NoteBook,
    tool_router: ToolRouter<Self>,
}

fn owner(token: &VerifiedToken) -> String {
    token.principal().unwrap_or("anonymous").to_owned()
}

#[tool_router]
impl Notes {
    /// A server over `book`.
    pub fn new(book: NoteBook) -> Self {
        Notes { book, tool_router: Self::tool_router() }
    }

    #[tool(description = "Who the access token belongs to, and what it allows")]
    async fn whoami(&self, token: VerifiedToken) -> String {
        let scope = token.scope.as_ref().map(ToString::to_string).unwrap_or_default();
        format!("subject={} client_id={} scope={scope}", owner(&token), token.client_id.as_deref().unwrap_or("-"))
    }

    #[tool(description = "List your notes")]
    async fn list_notes(&self, token: VerifiedToken) -> String {
        let book = self.book.0.lock().unwrap_or_else(|p| p.into_inner());
        book.get(&owner(&token)).map(|notes| notes.join("\n")).unwrap_or_default()
    }

    #[tool(description = "Add a note (needs the notes:write scope)")]
    async fn add_note(
        &self,
        token: VerifiedToken,
        Parameters(AddNote { text }): Parameters<AddNote>,
    ) -> Result<CallToolResult, ErrorData> {
        if !token.has_scope("notes:write") {
            return Ok(CallToolResult::error(vec![ContentBlock::text("this token lacks the notes:write scope")]));
        }
        let mut book = self.book.0.lock().unwrap_or_else(|p| p.into_inner());
        let notes = book.entry(owner(&token)).or_default();
        notes.push(text);
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("{} notes", notes.len()))]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions("Your notes.")
    }
}

/// The whole application: the MCP endpoint at the resource's path behind the bearer-token layer, the
/// RFC 9728 metadata beside it, request logs around both.
pub fn app(resource: &ProtectedResource, verifier: impl TokenVerifier, book: NoteBook) -> Router {
    let url: url::Url = resource.resource().parse().expect("the resource is a URL");
    let host = url.host_str().unwrap_or("localhost").trim_matches(['[', ']']).to_owned();
    let mcp = StreamableHttpService::new(
        move || Ok(Notes::new(book.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts([host]),
    );
    Router::new()
        .nest_service(url.path(), mcp)
        .layer(resource.bearer_auth(verifier).require_scopes(["notes:read"]))
        .merge(resource.router())
        .layer(RequestLogLayer::new())
}

#[allow(dead_code)] // the integration tests reuse this file without its `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())).init();
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let issuer = env("AUTHFLOW_ISSUER", "http://127.0.0.1:8000");
    let listen = env("NOTES_LISTEN", "127.0.0.1:3000");
    let resource_url = env("NOTES_RESOURCE", &format!("http://{listen}/mcp"));
    let client_id = std::env::var("NOTES_CLIENT_ID").map_err(|_| "set NOTES_CLIENT_ID")?;
    let client_secret = std::env::var("NOTES_CLIENT_SECRET").map_err(|_| "set NOTES_CLIENT_SECRET")?;

    // Plain http and loopback are for local development only.
    let local = issuer.starts_with("http://127.0.0.1") || issuer.starts_with("http://localhost");
    let http = SafeHttpClient::new(if local { SsrfPolicy::development() } else { SsrfPolicy::strict() })?;
    let verifier = IntrospectionVerifier::builder(format!("{issuer}/introspect").parse()?, resource_url.as_str())
        .client_secret_basic(client_id, client_secret)
        .issuer(issuer.as_str())
        .http_client(http)
        .build()?;
    let resource = ProtectedResource::new(&resource_url)?
        .authorization_server(issuer.as_str())
        .scopes_supported(["notes:read", "notes:write"])
        .resource_name("Notes");

    let app = TrailingSlashLayer::new().layer(app(&resource, verifier, NoteBook::default()));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!("notes MCP server at {resource_url}; metadata at {}", resource.metadata_url());
    axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
    Ok(())
}
