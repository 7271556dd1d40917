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
mod bearer;
mod client_auth;
mod client_ip;
mod clients;
mod cors;
mod device;
mod discovery;
pub mod error;
mod health;
mod introspect;
mod issue;
mod jwks;
pub mod keys;
mod limits;
pub mod observe;
mod pages;
pub mod params;
pub mod policy;
mod purge;
mod register;
mod remote;
mod revoke;
mod rules;
pub mod runtime;
mod session;
mod token;
pub mod upstream;
mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use authflow_core::ratelimit::Decision;
use authflow_core::ratelimit::MemoryRateLimiter;
use authflow_core::GrantType;
use authflow_store::{RateLimiter, ReplayStore, Store};
use axum::routing::{get, post};
use axum::Router;
use limits::Limited;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
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
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] authflow_http::FetchError),
    /// An outbound client that allows plain http was given to a server with a public issuer.
    #[error(
        "an outbound HTTP client that allows plain http is for local tests only; the issuer {0:?} is not loopback"
    )]
    InsecureHttpClient(String),
    /// An upstream identity provider's configuration is unusable; the text says why.
    #[error("{0}")]
    InvalidUpstream(String),
    /// [`Policy::signing_algorithm`] is not one authflow signs with (ES256 or EdDSA).
    #[error("signing algorithm: {0}")]
    UnsupportedSigningAlgorithm(#[from] keys::UnsupportedSigningAlgorithm),
}

/// Shared state of every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    pub issuer: Url,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub scopes: Vec<String>,
    pub policy: Policy,
    /// Every rate limit (sign-ins, code guesses, registrations, token and introspection requests), keyed by
    /// purpose and address: in this process by default, shared through Redis across replicas.
    pub limiter: Arc<dyn RateLimiter>,
    /// Where one-time markers (client assertion `jti`s) go: the store by default, Redis when configured.
    pub replay: Option<Arc<dyn ReplayStore>>,
    /// JWT signing keys.
    pub keys: keys::KeyRing,
    /// Client metadata documents and client key sets, fetched SSRF-safely and cached.
    pub remote: remote::RemoteDocuments,
    /// Prometheus counters.
    pub metrics: observe::Metrics,
    /// Clients recently read from storage.
    pub(crate) clients: clients::ClientCache,
    /// Resource indicators recently validated, in canonical form.
    pub(crate) resources: rules::CanonicalResources,
    /// Upstream identity providers, and whether local passwords are offered beside them.
    pub upstream: upstream::Upstreams,
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

    /// Every scope the server knows: the configured ones plus the OpenID Connect ones. Empty when none are
    /// configured, which means any scope.
    pub fn known_scopes(&self) -> Vec<String> {
        let mut known = self.scopes.clone();
        if !known.is_empty() {
            known.extend(
                rules::OIDC_SCOPES.iter().filter(|s| !self.scopes.iter().any(|k| k == *s)).map(|s| s.to_string()),
            );
        }
        known
    }

    /// Count a request against `limit` under `key`. A limiter that cannot be reached refuses (503): failing
    /// open would switch brute-force protection off exactly when a replica is under stress.
    pub async fn rate_limit(
        &self,
        key: &str,
        limit: &authflow_core::ratelimit::RateLimit,
    ) -> Result<Decision, ApiError> {
        Ok(self.limiter.check(key, limit, self.clock.now()).await?)
    }

    /// Remember a one-time `key` until `expires_at`: `true` the first time.
    pub async fn remember_once(&self, key: &str, expires_at: authflow_core::UnixTime) -> Result<bool, ApiError> {
        let now = self.clock.now();
        Ok(match &self.replay {
            Some(replay) => replay.remember_once(key, expires_at, now).await?,
            None => self.store.remember_once(key, expires_at, now).await?,
        })
    }

    /// The grant types served.
    pub fn grant_types(&self) -> &'static [GrantType] {
        &[GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::AuthorizationCode, GrantType::DeviceCode]
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
    http: Option<authflow_http::SafeHttpClient>,
    limiter: Option<Arc<dyn RateLimiter>>,
    replay: Option<Arc<dyn ReplayStore>>,
    key_encryption: Option<keys::KeyEncryptionKey>,
    upstream: Vec<upstream::UpstreamProvider>,
    local_passwords: bool,
}

impl AuthServer {
    /// Start building a server for `issuer` on `store`.
    pub fn builder(issuer: Url, store: Arc<dyn Store>) -> AuthServerBuilder {
        AuthServerBuilder {
            issuer,
            store,
            clock: Arc::new(SystemClock),
            scopes: Vec::new(),
            policy: Policy::default(),
            http: None,
            limiter: None,
            replay: None,
            key_encryption: None,
            upstream: Vec::new(),
            local_passwords: true,
        }
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        let base = self.state.base_path();
        let state = self.state.clone();
        let cors = cors::layer(&self.state.policy.cors_origins);
        let limit = |which| axum::middleware::from_fn_with_state((state.clone(), which), limits::enforce);
        let router = Router::new()
            .merge(health::routes())
            .merge(discovery::routes(&self.state.issuer))
            .merge(authorize::routes(&base))
            .route(
                &format!("{base}/token"),
                post(token::token).layer(ServiceBuilder::new().layer(cors.clone()).layer(limit(Limited::Token))),
            )
            .route(&format!("{base}/device_authorization"), post(device::authorization).layer(limit(Limited::Token)))
            .merge(device::routes(&base))
            .route(&format!("{base}/introspect"), post(introspect::introspect).layer(limit(Limited::Introspect)))
            .route(&format!("{base}/revoke"), post(revoke::revoke).layer(cors.clone()))
            .route(&format!("{base}/jwks.json"), get(jwks::jwks))
            .route(
                &format!("{base}/userinfo"),
                get(userinfo::userinfo)
                    .post(userinfo::userinfo)
                    .layer(ServiceBuilder::new().layer(cors.clone()).layer(limit(Limited::Introspect))),
            )
            .merge(register::routes(&base).layer(cors))
            .route("/metrics", get(observe::metrics));
        // Where `ClientIp` learns which peers may name the client (none: the peer is the client).
        let policy = &self.state.policy;
        let router = if policy.trusted_proxies.is_empty() {
            router
        } else {
            let trusted = client_ip::TrustedProxies::new(&policy.trusted_proxies, policy.trusted_proxy_header);
            router.layer(axum::Extension(trusted))
        };
        router
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            // After routing (Router::layer), so the route pattern labels the metrics and the span.
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), observe::observe))
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

    /// The client for outbound calls (client metadata documents, client `jwks_uri`s). Default: the strict
    /// SSRF policy — `https` only, no private, loopback or link-local targets — 5 s per call, 3 redirects.
    /// A client whose policy allows plain http is accepted only with a loopback issuer: it exists for local
    /// tests, which then may also use `http://127.0.0.1/…` client ids.
    pub fn http_client(mut self, http: authflow_http::SafeHttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Where rate-limit windows live. Default: this process ([`MemoryRateLimiter`]); replicas share limits
    /// through a shared one, e.g. `authflow_store::redis::RedisShared`.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Where one-time markers (client assertion `jti`s) live. Default: the store (shared by replicas that
    /// share a database); Redis keeps them off the database.
    pub fn replay_store(mut self, replay: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(replay);
        self
    }

    /// Seal signing keys at rest with `key` (see [`keys`]). Every replica needs the same key.
    pub fn key_encryption(mut self, key: keys::KeyEncryptionKey) -> Self {
        self.key_encryption = Some(key);
        self
    }

    /// Offer sign-in at an upstream identity provider (OpenID Connect or GitHub) on the sign-in page; call
    /// once per provider. See [`upstream`] for the round trip and how identities become local users. Calls
    /// to providers go through a client with the same SSRF policy as [`AuthServerBuilder::http_client`]'s
    /// (system resolver, bundled web roots), which follows no redirect.
    pub fn upstream(mut self, provider: upstream::UpstreamProvider) -> Self {
        self.upstream.push(provider);
        self
    }

    /// Offer the username and password form (default `true`). With `false`, people sign in only through
    /// upstream providers (at least one is then required) and password posts are refused.
    pub fn local_passwords(mut self, enabled: bool) -> Self {
        self.local_passwords = enabled;
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
        let http = match self.http {
            Some(http) if http.policy().allows_http() && !loopback => {
                return Err(BuildError::InsecureHttpClient(issuer.to_string()))
            }
            Some(http) => http,
            None => authflow_http::SafeHttpClient::builder(authflow_core::ssrf::SsrfPolicy::strict())
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        // Calls carrying upstream credentials follow no redirect (see `upstream::Upstreams::http`).
        let upstream_http = authflow_http::SafeHttpClient::builder(http.policy().clone())
            .timeout(Duration::from_secs(10))
            .max_redirects(0)
            .build()?;
        let upstream = upstream::Upstreams::new(self.upstream, self.local_passwords, upstream_http)
            .map_err(BuildError::InvalidUpstream)?;
        // A key that stops signing (the algorithm changed) stays published as long as its tokens live.
        let keep_published = self.policy.access_token_ttl + self.policy.clock_skew;
        let keys = keys::KeyRing::new(self.store.clone(), keys::signing_algorithm(self.policy.signing_algorithm)?)
            .with_encryption(self.key_encryption)
            .with_rotation(keys::ROTATION_OVERLAP, keep_published);
        Ok(AuthServer {
            state: Arc::new(AppState {
                upstream,
                keys,
                issuer,
                store: self.store,
                clock: self.clock,
                scopes: self.scopes,
                clients: clients::ClientCache::new(self.policy.client_cache_ttl),
                resources: rules::CanonicalResources::new(self.policy.resource_uris),
                policy: self.policy,
                limiter: self.limiter.unwrap_or_else(|| Arc::new(MemoryRateLimiter::new())),
                replay: self.replay,
                remote: remote::RemoteDocuments::new(http),
                metrics: observe::Metrics::default(),
            }),
        })
    }
}
