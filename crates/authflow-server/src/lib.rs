//! # authflow-server
//!
//! The authflow OAuth 2.1 authorization server as a library. Build it with [`AuthServer::builder`] and mount
//! [`AuthServer::router`] in any axum application, or run it with the `authflow serve` command.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = authflow_store::open("sqlite://authflow.db", &Default::default()).await?;
//! let server = authflow_server::AuthServer::builder("http://127.0.0.1:8000".parse()?, store).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, server.router()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assertion;
mod authorize;
mod client_auth;
mod client_ip;
mod cors;
mod discovery;
pub mod error;
mod health;
mod introspect;
mod issue;
mod jwks;
pub mod keys;
mod limits;
mod pages;
pub mod params;
pub mod policy;
mod purge;
mod register;
mod revoke;
mod rules;
pub mod runtime;
mod session;
mod token;

use std::sync::Arc;
use std::time::Duration;

use authflow_core::ratelimit::MemoryRateLimiter;
use authflow_core::GrantType;
use authflow_store::Store;
use axum::routing::{get, post};
use axum::Router;
use limits::Limited;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use url::Url;

pub use error::ApiError;
pub use policy::Policy;
pub use runtime::{random_id, Clock, ManualClock, OsEntropy, SystemClock};

/// Largest request body any endpoint accepts; OAuth requests are small, so anything larger is hostile.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer is not a valid issuer identifier (RFC 8414 §2).
    #[error("invalid issuer {0:?}: it must be an https URL (or http on a loopback host) with no query or fragment")]
    InvalidIssuer(String),
}

/// Shared state of every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    pub issuer: Url,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub scopes: Vec<String>,
    pub policy: Policy,
    /// Sign-in attempts, per username and per client address (in this process).
    pub login_limiter: MemoryRateLimiter,
    /// JWT signing keys.
    pub keys: keys::KeyRing,
    /// Registrations, per client address (in this process).
    pub registration_limiter: MemoryRateLimiter,
    /// Token and introspection requests, per client address (in this process).
    pub endpoint_limiter: MemoryRateLimiter,
}

impl AppState {
    /// The issuer exactly as published (no trailing slash on a bare origin).
    pub fn issuer_string(&self) -> String {
        discovery::issuer_string(&self.issuer)
    }

    /// The issuer's path without a trailing slash: endpoints live below it.
    pub fn base_path(&self) -> String {
        self.issuer.path().trim_end_matches('/').to_owned()
    }

    /// The absolute URL of an endpoint, e.g. `endpoint("token")`.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.issuer_string())
    }

    /// The grant types served.
    pub fn grant_types(&self) -> &'static [GrantType] {
        &[GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::AuthorizationCode]
    }
}

/// A configured authorization server.
#[derive(Debug, Clone)]
pub struct AuthServer {
    state: Arc<AppState>,
}

/// Builds an [`AuthServer`].
#[derive(Debug)]
pub struct AuthServerBuilder {
    issuer: Url,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    scopes: Vec<String>,
    policy: Policy,
}

impl AuthServer {
    /// Start building a server for `issuer` on `store`.
    pub fn builder(issuer: Url, store: Arc<dyn Store>) -> AuthServerBuilder {
        AuthServerBuilder { issuer, store, clock: Arc::new(SystemClock), scopes: Vec::new(), policy: Policy::default() }
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        let base = self.state.base_path();
        let state = self.state.clone();
        let cors = cors::layer(&self.state.policy.cors_origins);
        let limit = |which| axum::middleware::from_fn_with_state((state.clone(), which), limits::enforce);
        Router::new()
            .merge(health::routes())
            .merge(discovery::routes(&self.state.issuer))
            .merge(authorize::routes(&base))
            .route(
                &format!("{base}/token"),
                post(token::token).layer(ServiceBuilder::new().layer(cors.clone()).layer(limit(Limited::Token))),
            )
            .route(&format!("{base}/introspect"), post(introspect::introspect).layer(limit(Limited::Introspect)))
            .route(&format!("{base}/revoke"), post(revoke::revoke).layer(cors.clone()))
            .route(&format!("{base}/jwks.json"), get(jwks::jwks))
            .merge(register::routes(&base).layer(cors))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            .layer(TraceLayer::new_for_http())
            .with_state(self.state.clone())
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &Url {
        &self.state.issuer
    }

    /// Purge expired rows in the background every `every`.
    pub fn spawn_purger(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        purge::spawn_purger(self.state.store.clone(), self.state.clock.clone(), every)
    }
}

impl AuthServerBuilder {
    /// Use another clock (tests move a [`ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The scopes the server knows, advertised as `scopes_supported`.
    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Lifetimes and rules.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Check the configuration and build.
    pub fn build(self) -> Result<AuthServer, BuildError> {
        let issuer = self.issuer;
        let loopback = matches!(issuer.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(issuer.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || issuer.host_str() == Some("localhost");
        let scheme_ok = issuer.scheme() == "https" || (issuer.scheme() == "http" && loopback);
        if !scheme_ok || issuer.query().is_some() || issuer.fragment().is_some() || !issuer.username().is_empty() {
            return Err(BuildError::InvalidIssuer(issuer.to_string()));
        }
        Ok(AuthServer {
            state: Arc::new(AppState {
                keys: keys::KeyRing::new(self.store.clone(), authflow_core::jose::Algorithm::ES256),
                issuer,
                store: self.store,
                clock: self.clock,
                scopes: self.scopes,
                policy: self.policy,
                login_limiter: MemoryRateLimiter::new(),
                registration_limiter: MemoryRateLimiter::new(),
                endpoint_limiter: MemoryRateLimiter::new(),
            }),
        })
    }
}
