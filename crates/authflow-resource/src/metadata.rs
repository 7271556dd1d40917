//! [`ProtectedResource`]: RFC 9728 protected-resource metadata routes, and the challenge URL that points
//! MCP clients to them.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use authflow_resource::{IntrospectionVerifier, ProtectedResource};
//!
//! # fn app(verifier: IntrospectionVerifier) -> Result<Router, Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::new("https://mcp.example.com/mcp")?
//!     .authorization_server("https://auth.example.com")
//!     .scopes_supported(["notes:read", "notes:write"])
//!     .resource_name("Notes");
//!
//! let app = Router::new()
//!     .route("/mcp", post(|| async { "…" }))
//!     // 401s say: resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
//!     .layer(resource.bearer_auth(verifier).require_scopes(["notes:read"]))
//!     // GET /.well-known/oauth-protected-resource and /.well-known/oauth-protected-resource/mcp
//!     .merge(resource.router());
//! # Ok(app) }
//! ```
//!
//! The document is served at the path-inserted URL RFC 9728 §3.1 defines
//! (`/.well-known/oauth-protected-resource/mcp` for `https://mcp.example.com/mcp`) and at the root
//! `/.well-known/oauth-protected-resource`, where MCP clients look when the challenge gives no URL. Both
//! answer `GET` and CORS preflights with `Access-Control-Allow-Origin: *`, so browser-based clients (MCP
//! Inspector) can read them.
//!
//! Some clients written for the 2025-03-26 MCP revision look for the authorization server's RFC 8414
//! metadata at the MCP server's own origin. [`ProtectedResource::authorization_server_metadata_passthrough`]
//! serves it there: fetched from the first authorization server through the [`SafeHttpClient`] (SSRF-safe),
//! checked (its `issuer` must be the configured one), cached for [`AS_METADATA_TTL`], and served stale if
//! a refresh fails.

use std::sync::Arc;
use std::time::Duration;

use authflow_core::metadata::{
    authorization_server_metadata_urls, well_known_url, AuthorizationServerMetadata, ProtectedResourceMetadata,
    OAUTH_AUTHORIZATION_SERVER, OAUTH_PROTECTED_RESOURCE,
};
use authflow_core::UnixTime;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::Mutex as AsyncMutex;
use tower_http::cors::{Any, CorsLayer};
use url::Url;

use crate::auth::BearerAuthLayer;
use crate::clock::{Clock, SystemClock};
use crate::http::SafeHttpClient;
use crate::verifier::TokenVerifier;
use crate::BuildError;

/// How long fetched authorization server metadata is served before it is fetched again.
pub const AS_METADATA_TTL: Duration = Duration::from_secs(300);
/// How long a failed fetch of authorization server metadata waits before the next attempt.
const AS_METADATA_RETRY: Duration = Duration::from_secs(10);

/// A protected resource's RFC 9728 metadata and the routes that publish it (see the module docs).
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    resource: Url,
    metadata: ProtectedResourceMetadata,
    passthrough: Option<Arc<Passthrough>>,
}

impl ProtectedResource {
    /// Metadata for `resource`, this server's resource identifier (the URL MCP clients connect to, e.g.
    /// `https://mcp.example.com/mcp`): an absolute `http(s)` URL without fragment. `bearer_methods_supported`
    /// starts as `["header"]`.
    pub fn new(resource: &str) -> Result<ProtectedResource, BuildError> {
        let url = Url::parse(resource).map_err(|_| BuildError::Config("the resource is not an absolute URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() || !url.has_host() {
            return Err(BuildError::Config("the resource must be an http(s) URL with a host and no fragment"));
        }
        let metadata = ProtectedResourceMetadata {
            bearer_methods_supported: vec!["header".to_owned()],
            ..ProtectedResourceMetadata::new(resource)
        };
        Ok(ProtectedResource { resource: url, metadata, passthrough: None })
    }

    /// Add an authorization server (its issuer identifier).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.metadata.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes clients may request for this resource.
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.metadata.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.metadata.resource_name = Some(name.into());
        self
    }

    /// A URL of documentation for developers.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.metadata.resource_documentation = Some(url.into());
        self
    }

    /// Change anything else in the document.
    pub fn map_metadata(mut self, f: impl FnOnce(&mut ProtectedResourceMetadata)) -> Self {
        f(&mut self.metadata);
        self
    }

    /// Also serve the first authorization server's RFC 8414 metadata at this resource's origin (see the
    /// module docs), fetched with `http`.
    pub fn authorization_server_metadata_passthrough(mut self, http: SafeHttpClient) -> Result<Self, BuildError> {
        self.passthrough = Some(Arc::new(Passthrough::new(&self.metadata, http, Arc::new(SystemClock))?));
        Ok(self)
    }

    /// [`ProtectedResource::authorization_server_metadata_passthrough`] with a given clock (for tests).
    pub fn authorization_server_metadata_passthrough_with_clock(
        mut self,
        http: SafeHttpClient,
        clock: impl Clock,
    ) -> Result<Self, BuildError> {
        self.passthrough = Some(Arc::new(Passthrough::new(&self.metadata, http, Arc::new(clock))?));
        Ok(self)
    }

    /// The document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.metadata
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.metadata.resource
    }

    /// Where the document is published (RFC 9728 §3.1 path insertion): the `resource_metadata` of every
    /// challenge.
    pub fn metadata_url(&self) -> Url {
        well_known_url(&self.resource, OAUTH_PROTECTED_RESOURCE)
    }

    /// A [`BearerAuthLayer`] whose challenges point at [`ProtectedResource::metadata_url`].
    pub fn bearer_auth(&self, verifier: impl TokenVerifier) -> BearerAuthLayer {
        BearerAuthLayer::new(verifier, self.metadata_url().to_string())
    }

    /// The discovery routes (see the module docs). Merge them into the application's router, outside the
    /// bearer-token layer.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let document = Arc::new(self.metadata.clone());
        let serve = move || {
            let document = document.clone();
            async move {
                let mut response = Json(&*document).into_response();
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
                response
            }
        };
        let inserted = self.metadata_url().path().to_owned();
        let root = format!("/.well-known/{OAUTH_PROTECTED_RESOURCE}");
        let mut router = Router::new().route(&root, get(serve.clone()));
        if inserted != root {
            router = router.route(&inserted, get(serve));
        }
        if let Some(passthrough) = &self.passthrough {
            let path = format!("/.well-known/{OAUTH_AUTHORIZATION_SERVER}");
            let as_router = Router::new().route(&path, get(serve_as_metadata)).with_state(passthrough.clone());
            router = router.merge(as_router);
        }
        router
            .layer(CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::OPTIONS]).allow_headers(Any))
    }
}

#[derive(Debug)]
struct Cached {
    document: Arc<Value>,
    fetched_at: UnixTime,
}

#[derive(Debug, Default)]
struct PassthroughState {
    cached: Option<Cached>,
    last_failure: Option<UnixTime>,
}

/// The cached authorization server metadata.
#[derive(Debug)]
struct Passthrough {
    issuer: String,
    urls: Vec<Url>,
    http: SafeHttpClient,
    clock: Arc<dyn Clock>,
    state: AsyncMutex<PassthroughState>,
}

impl Passthrough {
    fn new(
        metadata: &ProtectedResourceMetadata,
        http: SafeHttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BuildError> {
        let issuer = metadata
            .authorization_servers
            .first()
            .ok_or(BuildError::Config("name an authorization server before enabling the metadata pass-through"))?
            .clone();
        let url = Url::parse(&issuer).map_err(|_| BuildError::Config("the authorization server is not a URL"))?;
        http.policy().check_url(&url)?;
        Ok(Passthrough {
            issuer,
            urls: authorization_server_metadata_urls(&url),
            http,
            clock,
            state: AsyncMutex::new(PassthroughState::default()),
        })
    }

    async fn fetch(&self) -> Result<Value, String> {
        let mut last = String::new();
        for url in &self.urls {
            match self.http.get_json::<Value>(url).await {
                Ok(doc) => {
                    let parsed: AuthorizationServerMetadata =
                        serde_json::from_value(doc.clone()).map_err(|e| format!("{url}: {e}"))?;
                    parsed.validate(&self.issuer).map_err(|e| format!("{url}: {e}"))?;
                    return Ok(doc);
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    }

    /// The document, fetched when missing or older than [`AS_METADATA_TTL`]; stale on failure.
    async fn document(&self) -> Option<Arc<Value>> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        let fresh = state.cached.as_ref().filter(|c| now.saturating_since(c.fetched_at) < AS_METADATA_TTL);
        if let Some(c) = fresh {
            return Some(c.document.clone());
        }
        let backing_off = state.last_failure.is_some_and(|f| now.saturating_since(f) < AS_METADATA_RETRY);
        if !backing_off {
            match self.fetch().await {
                Ok(doc) => {
                    let document = Arc::new(doc);
                    state.cached = Some(Cached { document: document.clone(), fetched_at: now });
                    state.last_failure = None;
                    return Some(document);
                }
                Err(reason) => {
                    tracing::warn!(issuer = %self.issuer, %reason, "fetching authorization server metadata failed");
                    state.last_failure = Some(now);
                }
            }
        }
        state.cached.as_ref().map(|c| c.document.clone())
    }
}

async fn serve_as_metadata(State(passthrough): State<Arc<Passthrough>>) -> Response {
    match passthrough.document().await {
        Some(document) => {
            let mut response = Json(&*document).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
            response
        }
        None => {
            let body = authflow_core::OAuthError::new(authflow_core::ErrorCode::TemporarilyUnavailable).to_json();
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(AS_METADATA_RETRY.as_secs()));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_document() {
        let r = ProtectedResource::new("https://mcp.example.com/mcp")
            .unwrap()
            .authorization_server("https://auth.example.com")
            .scopes_supported(["notes:read"]);
        assert_eq!(r.metadata_url().as_str(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        assert_eq!(r.metadata().bearer_methods_supported, vec!["header"]);
        r.metadata().validate("https://mcp.example.com/mcp").unwrap();
        let root = ProtectedResource::new("https://mcp.example.com").unwrap();
        assert_eq!(root.metadata_url().as_str(), "https://mcp.example.com/.well-known/oauth-protected-resource");
        let _: Router = root.router(); // one route, not a duplicate
        for bad in ["mcp.example.com", "ftp://x.example/", "https://x.example/#f", "/mcp"] {
            assert!(ProtectedResource::new(bad).is_err(), "{bad}");
        }
        let none = ProtectedResource::new("https://mcp.example.com/mcp").unwrap();
        let http = SafeHttpClient::new(authflow_core::ssrf::SsrfPolicy::strict()).unwrap();
        assert!(none.authorization_server_metadata_passthrough(http).is_err(), "needs an authorization server");
    }
}
