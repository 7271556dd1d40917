//! # notes-mcp
//!
//! An example MCP server — notes kept in SQLite, served over MCP streamable HTTP with
//! [rmcp](https://docs.rs/rmcp) — protected by `authflow-resource`. `authflow demo` runs it next to an
//! authorization server; `cargo run -p notes-mcp` runs it on its own against an existing one.
//!
//! | tool | scope |
//! |---|---|
//! | `list_notes`, `get_note` | `notes:read` |
//! | `create_note`, `update_note`, `delete_note` | `notes:write` |
//!
//! Every request needs a valid token issued for this resource with `notes:read` (the
//! [`BearerAuthLayer`](authflow_resource::BearerAuthLayer)); the mutation tools check `notes:write`
//! themselves, because one HTTP endpoint serves every tool. A token without it gets a tool error naming the
//! missing scope. Notes belong to the token's principal (its subject, or its client for
//! client-credentials tokens).
//!
//! The 401 challenge advertises both scopes
//! ([`challenge_scopes`](authflow_resource::BearerAuthLayer::challenge_scopes)): MCP clients ask for
//! exactly the challenged scope (MCP scope selection), so naming only the required `notes:read` would get
//! them a read-only grant. (A 403 step-up per tool is no substitute today: the TypeScript SDK answers it by
//! refreshing, which cannot widen a grant.)
//!
//! With [`NotesApp::friction`], the mutation tools are under friction control
//! ([`FrictionLayer`](authflow_resource::FrictionLayer), [`default_friction`]) and `GET /friction` shows
//! a caller its own levels.
//!
//! ```no_run
//! # async fn run(verifier: authflow_resource::IntrospectionVerifier) -> Result<(), Box<dyn std::error::Error>> {
//! use authflow_resource::ProtectedResource;
//! use notes_mcp::{NoteStore, NotesApp};
//!
//! let resource = ProtectedResource::new("http://127.0.0.1:8001/mcp")?
//!     .authorization_server("http://127.0.0.1:8000")
//!     .scopes_supported(notes_mcp::SCOPES);
//! let app = NotesApp::new(NoteStore::open("sqlite://notes.db").await?).protected(&resource, verifier)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await?;
//! axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod server;
mod store;

use std::sync::Arc;

use authflow_core::friction::{FrictionConfig, FrictionMode, GroupConfig};
use authflow_resource::{
    FrictionController, ProtectedResource, RequestLogLayer, TokenVerifier, TrailingSlash, TrailingSlashLayer,
    VerifiedToken,
};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::Layer;

pub use server::Notes;
pub use store::{Note, NoteStore, StoreError};

/// The scope every call needs.
pub const READ_SCOPE: &str = "notes:read";
/// The scope the mutation tools need.
pub const WRITE_SCOPE: &str = "notes:write";
/// Both scopes, for metadata and client registration.
pub const SCOPES: [&str; 2] = [READ_SCOPE, WRITE_SCOPE];

/// The tools that change notes.
pub const MUTATION_TOOLS: [&str; 3] = ["create_note", "update_note", "delete_note"];

/// Friction control for the notes tools: the mutations together at most 20 % of a client's calls,
/// delayed (up to 2 s) and then refused when a client goes far beyond that; reads are never slowed.
pub fn default_friction() -> FrictionConfig {
    FrictionConfig {
        mode: FrictionMode::Both,
        groups: vec![GroupConfig {
            name: "mutations".to_owned(),
            tools: MUTATION_TOOLS.map(String::from).to_vec(),
            target: 0.2,
        }],
        ..FrictionConfig::default()
    }
}

/// The identity headers an authflow gateway adds to the requests it forwards (see
/// [`NotesApp::behind_gateway`]).
pub mod gateway_headers {
    /// The token's subject.
    pub const SUBJECT: &str = "x-auth-subject";
    /// The client the token was issued to.
    pub const CLIENT_ID: &str = "x-auth-client-id";
    /// The granted scopes, space-separated.
    pub const SCOPES: &str = "x-auth-scopes";
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The resource is not a URL with a host.
    #[error("the resource {0:?} is not an http(s) URL with a host")]
    Resource(String),
    /// The path to serve MCP at is not absolute.
    #[error("the MCP path {0:?} must start with '/'")]
    Path(String),
}

/// Builds the notes MCP application: the streamable-HTTP endpoint over a [`NoteStore`], put behind
/// authflow's bearer-token layer ([`NotesApp::protected`]) or behind an authflow gateway
/// ([`NotesApp::behind_gateway`]).
#[derive(Debug, Clone)]
pub struct NotesApp {
    store: NoteStore,
    shutdown: CancellationToken,
    allowed_hosts: Vec<String>,
    friction: Option<FrictionController>,
}

impl NotesApp {
    /// An application over `store`.
    pub fn new(store: NoteStore) -> NotesApp {
        NotesApp { store, shutdown: CancellationToken::new(), allowed_hosts: Vec::new(), friction: None }
    }

    /// Cancelling `token` ends every MCP session and open SSE stream, so a graceful shutdown does not wait
    /// for clients that keep a stream open.
    pub fn shutdown_token(mut self, token: CancellationToken) -> NotesApp {
        self.shutdown = token;
        self
    }

    /// Also accept these `Host` values (rmcp refuses unknown hosts, against DNS rebinding); the
    /// resource's own host and the loopback names are always accepted.
    pub fn allow_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> NotesApp {
        self.allowed_hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Put the MCP endpoint of [`NotesApp::protected`] under friction control (e.g.
    /// `FrictionController::new(notes_mcp::default_friction())`) and serve `GET /friction` beside it,
    /// behind the same bearer layer. (Behind a gateway, the gateway applies friction.)
    pub fn friction(mut self, controller: FrictionController) -> NotesApp {
        self.friction = Some(controller);
        self
    }

    fn mcp_service(&self, host: Option<&str>) -> StreamableHttpService<Notes, LocalSessionManager> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        hosts.extend(host.map(str::to_owned));
        hosts.extend(self.allowed_hosts.iter().cloned());
        let store = self.store.clone();
        StreamableHttpService::new(
            move || Ok(Notes::new(store.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_allowed_hosts(hosts)
                .with_cancellation_token(self.shutdown.child_token()),
        )
    }

    /// The MCP endpoint at the resource's path, behind a bearer-token layer that demands an audience-bound
    /// token with `notes:read` verified by `verifier` (and under friction control, with `/friction`, if
    /// configured); the RFC 9728 metadata beside it; request logs around both; `/mcp/` treated as `/mcp`.
    pub fn protected(
        &self,
        resource: &ProtectedResource,
        verifier: impl TokenVerifier,
    ) -> Result<TrailingSlash<Router>, AppError> {
        let url: url::Url = resource.resource().parse().map_err(|_| AppError::Resource(resource.resource().into()))?;
        let host = url.host_str().ok_or_else(|| AppError::Resource(resource.resource().into()))?;
        let host = host.trim_matches(['[', ']']);
        // One body type, so the endpoint with and without friction is the same kind of service.
        let mcp =
            tower::ServiceExt::<Request>::map_response(self.mcp_service(Some(host)), |r| r.map(axum::body::Body::new));
        // Friction goes inside the bearer layer: it is kept per verified client.
        let mcp = tower::util::option_layer(self.friction.as_ref().map(FrictionController::layer)).layer(mcp);
        let mut routes = Router::new().nest_service(url.path(), mcp);
        if let Some(friction) = &self.friction {
            routes = routes.merge(friction.status_router());
        }
        let router = routes
            .layer(resource.bearer_auth(verifier).require_scopes([READ_SCOPE]).challenge_scopes(SCOPES))
            .merge(resource.router())
            .layer(RequestLogLayer::new());
        Ok(TrailingSlashLayer::new().layer(router))
    }

    /// The MCP endpoint at `path` with no token checks of its own, for running behind `authflow gateway`:
    /// the caller's identity comes from the gateway's `X-Auth-Subject`, `X-Auth-Client-Id` and
    /// `X-Auth-Scopes` headers. Only ever expose this to the gateway (bind it to loopback or a private
    /// network): anyone who can reach it can claim any identity. Requests without the headers are
    /// refused with 401.
    pub fn behind_gateway(&self, path: &str) -> Result<Router, AppError> {
        if !path.starts_with('/') {
            return Err(AppError::Path(path.into()));
        }
        Ok(Router::new()
            .nest_service(path, self.mcp_service(None))
            .layer(axum::middleware::from_fn(identity_from_gateway))
            .layer(RequestLogLayer::new()))
    }
}

/// The identity the gateway vouches for, as a [`VerifiedToken`] the tools read like a verified one.
fn gateway_identity(headers: &HeaderMap) -> Option<VerifiedToken> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let client_id = text(gateway_headers::CLIENT_ID);
    let subject = text(gateway_headers::SUBJECT).or(client_id)?;
    let mut token = VerifiedToken::new(subject);
    if let Some(client_id) = client_id {
        token = token.with_client_id(client_id);
    }
    if let Some(scope) = text(gateway_headers::SCOPES).and_then(|s| s.parse().ok()) {
        token = token.with_scope(scope);
    }
    Some(token)
}

async fn identity_from_gateway(mut request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    match gateway_identity(request.headers()) {
        Some(token) => {
            request.extensions_mut().insert(std::sync::Arc::new(token));
            next.run(request).await
        }
        None => (axum::http::StatusCode::UNAUTHORIZED, "no identity from the gateway").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_headers_become_an_identity() {
        let mut headers = HeaderMap::new();
        assert_eq!(gateway_identity(&headers), None);
        headers.insert(gateway_headers::CLIENT_ID, "c1".parse().unwrap());
        headers.insert(gateway_headers::SCOPES, "notes:read".parse().unwrap());
        let token = gateway_identity(&headers).unwrap();
        assert_eq!(token.principal(), Some("c1"));
        assert!(token.has_scope(READ_SCOPE) && !token.has_scope(WRITE_SCOPE));
        headers.insert(gateway_headers::SUBJECT, "alice".parse().unwrap());
        assert_eq!(gateway_identity(&headers).unwrap().subject.as_deref(), Some("alice"));
    }
}
