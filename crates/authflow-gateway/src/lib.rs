//! # authflow-gateway
//!
//! OAuth 2.1 in front of any HTTP MCP server, without touching it: a streaming reverse proxy that
//!
//! - publishes the RFC 9728 protected-resource metadata for the public MCP URL,
//! - demands a valid, audience-bound bearer token (and the configured scopes) on every proxied request,
//!   answering 401/403 with the MCP `WWW-Authenticate` challenge otherwise,
//! - forwards the request to the upstream **without the client's `Authorization` header** (token
//!   passthrough is forbidden by the MCP specification) and with the caller's identity in
//!   `X-Auth-Subject`, `X-Auth-Client-Id` and `X-Auth-Scopes` instead (any such headers sent by the client
//!   are removed first, so they cannot be forged),
//! - streams both bodies unchanged, Server-Sent Events included, and passes `Mcp-Session-Id`,
//!   `Last-Event-ID` and every other end-to-end header; hop-by-hop headers are dropped,
//! - optionally applies friction control to `tools/call` ([`GatewayBuilder::friction`]): clients that
//!   call a mutating tool far more than its share are slowed, asked for a justification, then refused
//!   with an MCP tool error; `GET /friction` shows a client its own levels,
//! - serves `GET /verify` for Traefik `ForwardAuth` / nginx `auth_request`: 200 with the `X-Auth-*`
//!   headers, or the 401/403 challenge.
//!
//! ```no_run
//! use authflow_core::ssrf::SsrfPolicy;
//! use authflow_gateway::Gateway;
//! use authflow_resource::{IntrospectionVerifier, ProtectedResource, SafeHttpClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::new("https://mcp.example.com/mcp")?
//!     .authorization_server("https://auth.example.com")
//!     .scopes_supported(["notes:read"]);
//! let verifier = IntrospectionVerifier::builder("https://auth.example.com/introspect".parse()?, resource.resource())
//!     .client_secret_basic("gateway", std::env::var("GATEWAY_SECRET")?)
//!     .http_client(SafeHttpClient::new(SsrfPolicy::strict())?)
//!     .build()?;
//! let gateway = Gateway::builder("http://127.0.0.1:3000/mcp".parse()?, resource, verifier)
//!     .require_scopes(["notes:read"])
//!     .build()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! axum::serve(listener, gateway.router()).await?;
//! # Ok(()) }
//! ```
//!
//! Requests to the resource's path (and below it) are proxied to the upstream URL (and below it); the
//! query string is kept. Anything else is 404, and paths with `.` or `..` segments are refused so a
//! request cannot climb out of the upstream's path.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod proxy;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::{SsrfError, SsrfPolicy};
use authflow_resource::{BearerAuthLayer, FrictionController, ProtectedResource, RequestLogLayer, TokenVerifier};
use axum::routing::get;
use axum::Router;
use tower::Layer;
use url::Url;

pub use proxy::{IDENTITY_HEADERS, X_AUTH_CLIENT_ID, X_AUTH_SCOPES, X_AUTH_SUBJECT};

/// The ForwardAuth endpoint's path.
pub const VERIFY_PATH: &str = "/verify";
/// The friction status route's path (with [`GatewayBuilder::friction`]).
pub const FRICTION_PATH: &str = "/friction";
/// Default bound on waiting for the upstream's response headers (not on streaming its body).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound on connecting to the upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The upstream URL is refused by the SSRF policy.
    #[error("the upstream URL is refused: {0}")]
    Ssrf(#[from] SsrfError),
    /// The upstream host does not resolve.
    #[error("the upstream host does not resolve: {0}")]
    Resolve(std::io::Error),
    /// The upstream URL cannot be proxied to (no host, a query or fragment, not http(s)).
    #[error("invalid upstream URL {0:?}: it must be an http(s) URL with a host and no query or fragment")]
    Upstream(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Builds a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    upstream: Url,
    resource: ProtectedResource,
    verifier: Arc<dyn TokenVerifier>,
    scopes: Vec<String>,
    challenge_scopes: Vec<String>,
    friction: Option<FrictionController>,
    policy: SsrfPolicy,
    upstream_timeout: Duration,
    connect_timeout: Duration,
}

impl GatewayBuilder {
    /// Require these scope tokens on every request (each item may hold several, space-separated).
    pub fn require_scopes<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, scopes: I) -> Self {
        self.scopes.extend(
            scopes.into_iter().flat_map(|s| s.as_ref().split_whitespace().map(str::to_owned).collect::<Vec<_>>()),
        );
        self
    }

    /// Name these scope tokens in 401 challenges instead of the required ones (see
    /// [`BearerAuthLayer::challenge_scopes`]): MCP clients request exactly what a 401 names, so advertise
    /// here every scope the upstream's tools may need.
    pub fn challenge_scopes<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, scopes: I) -> Self {
        self.challenge_scopes.extend(
            scopes.into_iter().flat_map(|s| s.as_ref().split_whitespace().map(str::to_owned).collect::<Vec<_>>()),
        );
        self
    }

    /// Apply friction control to the upstream's `tools/call` requests (a [`FrictionLayer`] between the
    /// bearer layer and the proxy) and serve `GET /friction`, behind the bearer layer, showing each
    /// client its own levels.
    ///
    /// [`FrictionLayer`]: authflow_resource::FrictionLayer
    pub fn friction(mut self, controller: FrictionController) -> Self {
        self.friction = Some(controller);
        self
    }

    /// The SSRF policy the upstream URL is checked with (default: [`SsrfPolicy::development`] — loopback
    /// and plain `http` allowed, since the operator chose the upstream; private networks, link-local and
    /// metadata addresses refused unless allowed here).
    pub fn ssrf_policy(mut self, policy: SsrfPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound on waiting for the upstream's response headers (default [`DEFAULT_UPSTREAM_TIMEOUT`]).
    /// Bodies, such as SSE streams, are not bounded.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// Bound on connecting to the upstream (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Check the upstream (its URL and every address its host resolves to) and build.
    pub async fn build(self) -> Result<Gateway, BuildError> {
        let upstream = self.upstream;
        if !matches!(upstream.scheme(), "http" | "https")
            || !upstream.has_host()
            || upstream.query().is_some()
            || upstream.fragment().is_some()
        {
            return Err(BuildError::Upstream(upstream.to_string()));
        }
        self.policy.check_url(&upstream)?;
        let host = upstream.host_str().ok_or_else(|| BuildError::Upstream(upstream.to_string()))?;
        let port = upstream.port_or_known_default().unwrap_or(80);
        let addresses =
            tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await.map_err(BuildError::Resolve)?;
        for address in addresses {
            self.policy.check_ip(address.ip())?;
        }
        // Not SafeHttpClient: it reads whole bodies into memory and bounds the whole exchange, which an SSE
        // stream cannot live with. The upstream is operator-configured and checked above; redirects are
        // not followed and proxies are ignored, so requests go exactly there.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .build()?;
        let mut layer = self.resource.bearer_auth(self.verifier);
        if !self.scopes.is_empty() {
            layer = layer.require_scopes(&self.scopes);
        }
        if !self.challenge_scopes.is_empty() {
            layer = layer.challenge_scopes(&self.challenge_scopes);
        }
        let resource_path = Url::parse(self.resource.resource())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .map_err(|_| BuildError::Upstream(self.resource.resource().to_owned()))?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                proxy: proxy::Proxy { http, upstream, resource_path, timeout: self.upstream_timeout },
                resource: self.resource,
                layer,
                friction: self.friction,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    proxy: proxy::Proxy,
    resource: ProtectedResource,
    layer: BearerAuthLayer,
    friction: Option<FrictionController>,
}

/// A configured gateway (see the crate docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// A gateway that proxies `resource` (the public MCP URL clients connect to) to `upstream`, accepting
    /// the tokens `verifier` accepts.
    pub fn builder(upstream: Url, resource: ProtectedResource, verifier: impl TokenVerifier) -> GatewayBuilder {
        GatewayBuilder {
            upstream,
            resource,
            verifier: Arc::new(verifier),
            scopes: Vec::new(),
            challenge_scopes: Vec::new(),
            friction: None,
            policy: SsrfPolicy::development(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The upstream URL.
    pub fn upstream(&self) -> &Url {
        &self.inner.proxy.upstream
    }

    /// The resource's metadata.
    pub fn resource(&self) -> &ProtectedResource {
        &self.inner.resource
    }

    /// The friction controller, if friction control is on.
    pub fn friction(&self) -> Option<&FrictionController> {
        self.inner.friction.as_ref()
    }

    /// The routes: the proxied MCP endpoint, [`VERIFY_PATH`], the RFC 9728 metadata, and with friction
    /// control [`FRICTION_PATH`].
    pub fn router(&self) -> Router {
        let proxy = self.inner.proxy.clone();
        let path = if self.inner.proxy.resource_path.is_empty() { "/" } else { &self.inner.proxy.resource_path };
        let below = format!("{}/{{*rest}}", self.inner.proxy.resource_path);
        let upstream = tower::service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy.forward(request).await) }
        });
        // Friction sits inside the bearer layer: it is kept per verified client.
        let upstream =
            tower::util::option_layer(self.inner.friction.as_ref().map(FrictionController::layer)).layer(upstream);
        let forward = self.inner.layer.clone().layer(upstream);
        let mut router = Router::new()
            .route_service(path, forward.clone())
            .route_service(&below, forward)
            .route(VERIFY_PATH, get(verify::verify).layer(self.inner.layer.clone()));
        if let Some(friction) = &self.inner.friction {
            router = router.merge(friction.status_router().layer(self.inner.layer.clone()));
        }
        router.merge(self.inner.resource.router()).layer(RequestLogLayer::new())
    }
}
