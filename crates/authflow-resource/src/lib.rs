//! # authflow-resource
//!
//! The resource-server toolkit: what an MCP server adds to accept only valid, scoped, audience-bound OAuth
//! tokens, and to tell MCP clients where to get them.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use authflow_core::ssrf::SsrfPolicy;
//! use authflow_resource::{IntrospectionVerifier, ProtectedResource, RequestLogLayer, SafeHttpClient, TrailingSlashLayer};
//! use tower::Layer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let http = SafeHttpClient::new(SsrfPolicy::strict())?; // every outbound call goes through it
//! let verifier = IntrospectionVerifier::builder("https://auth.example.com/introspect".parse()?, "https://mcp.example.com/mcp")
//!     .client_secret_basic("notes-rs", std::env::var("NOTES_RS_SECRET")?)
//!     .http_client(http)
//!     .build()?;
//! let resource = ProtectedResource::new("https://mcp.example.com/mcp")?
//!     .authorization_server("https://auth.example.com")
//!     .scopes_supported(["notes:read", "notes:write"]);
//!
//! let router = Router::new()
//!     .route("/mcp", post(|| async { "your MCP server here" }))
//!     .layer(resource.bearer_auth(verifier).require_scopes(["notes:read"]))
//!     .merge(resource.router())
//!     .layer(RequestLogLayer::new());
//! let app = TrailingSlashLayer::new().layer(router);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
//! # Ok(()) }
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`auth`] | [`BearerAuthLayer`], [`RequireScopeLayer`], the [`VerifiedToken`] / [`Authenticated`] extractors |
//! | [`challenge`] | `WWW-Authenticate` challenges (RFC 6750, RFC 9728) and [`AuthRejection`] |
//! | [`verifier`] | the [`TokenVerifier`] trait, [`VerifiedToken`], [`VerifyError`], [`JwtOrIntrospection`] |
//! | [`introspection`] | [`IntrospectionVerifier`]: RFC 7662, cached, single-flight |
//! | [`jwt`] | [`JwtVerifier`]: RFC 9068 JWTs checked locally against the issuer's JWKS |
//! | [`metadata`] | [`ProtectedResource`]: RFC 9728 metadata routes, optional RFC 8414 pass-through |
//! | [`http`] | [`SafeHttpClient`]: the SSRF-safe client every outbound call uses |
//! | [`normalize`] | [`TrailingSlashLayer`]: `/mcp/` ≡ `/mcp` |
//! | [`log`] | [`RequestLogLayer`]: request logs that never contain credentials |
//! | [`clock`] | the injectable [`Clock`](clock::Clock) |
//! | `rmcp` | (feature `rmcp`) `VerifiedToken` as an rmcp tool-handler argument |
//!
//! Every layer is the same triple as in `tower-http`: a `…Layer` with builder methods, the `Service` it
//! produces, and a doc example at the top of its module.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audience;
pub mod auth;
mod cache;
pub mod challenge;
pub mod clock;
pub mod friction;
/// The SSRF-safe HTTP client, from [`authflow_http`] (shared with the authorization server).
pub mod http {
    pub use authflow_http::*;
}
pub mod introspection;
pub mod jwt;
pub mod log;
pub mod metadata;
pub mod normalize;
#[cfg(feature = "rmcp")]
pub mod rmcp;
pub mod verifier;

pub use auth::{Authenticated, BearerAuth, BearerAuthFuture, BearerAuthLayer, RequireScope, RequireScopeLayer};
#[cfg(feature = "redis")]
pub use authflow_store::redis::RedisShared;
/// What replicas share (introspection verdicts, friction states): any [`SharedMap`], e.g. [`RedisShared`].
pub use authflow_store::{SharedMap, Swap};
pub use challenge::{AuthRejection, Challenge, RejectionKind};
pub use friction::{Friction, FrictionController, FrictionLayer};
pub use http::SafeHttpClient;
pub use introspection::{IntrospectionAuth, IntrospectionVerifier, IntrospectionVerifierBuilder, VerifierStats};
pub use jwt::{JwtVerifier, JwtVerifierBuilder};
pub use log::{RequestLog, RequestLogLayer};
pub use metadata::ProtectedResource;
pub use normalize::{TrailingSlash, TrailingSlashLayer};
pub use verifier::{JwtOrIntrospection, TokenVerifier, VerifiedToken, VerifyError};

/// Why a verifier, client or metadata router could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] http::FetchError),
    /// A configured URL is refused by the SSRF policy (e.g. `http` without [`SsrfPolicy::development`]).
    ///
    /// [`SsrfPolicy::development`]: authflow_core::ssrf::SsrfPolicy::development
    #[error("the URL is refused by the SSRF policy: {0}")]
    Ssrf(#[from] authflow_core::ssrf::SsrfError),
    /// Something else in the configuration.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
