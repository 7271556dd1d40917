//! Deployment policy: lifetimes and the rules a deployment may tune. Defaults are the safe ones.

use std::time::Duration;

use authflow_core::device::DevicePolicy;
use authflow_core::pkce::PkcePolicy;
use authflow_core::ratelimit::RateLimit;
use authflow_core::validation::redirect_uri::RedirectUriPolicy;
use authflow_core::validation::resource::ResourcePolicy;

pub use crate::client_ip::ProxyHeader;
pub use authflow_core::ssrf::{IpNetwork, IpNetworkError};

/// The form of access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessTokenFormat {
    /// 256-bit random strings; resource servers verify them by introspection.
    #[default]
    Opaque,
    /// RFC 9068 JWTs signed with the deployment's key; resource servers may verify them locally against the
    /// JWKS. They are stored (hashed) too, so introspection and revocation work the same.
    Jwt,
}

/// Lifetimes and rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Registrations allowed per client address (default 100 per 10 minutes).
    pub registrations_per_ip: RateLimit,
    /// When set, `POST /register` requires this initial access token (RFC 7591 §3) as a Bearer token: a
    /// closed deployment. Only its hash is kept.
    pub registration_token: Option<authflow_core::TokenHash>,
    /// Browser origins allowed to call `/token`, `/revoke` and `/register` besides loopback ones (`*`: any).
    pub cors_origins: Vec<String>,
    /// Token requests per client address (default 600 per minute).
    pub token_requests_per_ip: RateLimit,
    /// Introspection requests per client address (default 6000 per minute: resource servers introspect on
    /// every cold token).
    pub introspection_requests_per_ip: RateLimit,
    /// Lifetime of dynamically registered clients (default: unlimited).
    pub dynamic_client_ttl: Option<Duration>,
    /// Opaque (default) or JWT access tokens.
    pub access_token_format: AccessTokenFormat,
    /// What new signing keys are, for JWT access tokens (RFC 9068) and ID tokens: ES256 (default) or EdDSA;
    /// the builder refuses anything else (authflow never signs with RSA). Changing it rotates the key: see
    /// [`crate::keys`].
    pub signing_algorithm: authflow_core::jose::Algorithm,
    /// Access-token lifetime (default 1 hour).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime; each rotation starts a new one, capped by the grant (default 30 days).
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a grant: no refresh chain outlives it (default 90 days).
    pub grant_ttl: Duration,
    /// Authorization-code lifetime (default 60 seconds).
    pub code_ttl: Duration,
    /// Accepted clock skew for client assertions and other time checks (default 60 seconds).
    pub clock_skew: Duration,
    /// Longest accepted lifetime of a `private_key_jwt` client assertion (default 5 minutes).
    pub assertion_max_lifetime: Duration,
    /// PKCE rules (S256 required by default).
    pub pkce: PkcePolicy,
    /// Redirect-URI rules.
    pub redirect_uris: RedirectUriPolicy,
    /// Resource-indicator rules.
    pub resource_uris: ResourcePolicy,
    /// The resources (MCP servers) tokens may be issued for. Empty: any syntactically valid resource.
    pub resources: Vec<String>,
    /// Refuse authorization and token requests that name no `resource` (RFC 8707).
    pub require_resource: bool,
    /// How long a browser stays signed in at the authorization endpoint (default 12 hours).
    pub session_ttl: Duration,
    /// How long an approval is remembered, so the same client asking for no more skips the consent page
    /// (default 90 days).
    pub consent_ttl: Duration,
    /// Sign-in attempts allowed per username (default 10 per 5 minutes).
    pub login_attempts_per_user: RateLimit,
    /// Device authorization (RFC 8628): code lifetime (default 10 minutes) and polling interval (5 s).
    pub device: DevicePolicy,
    /// User codes a client address may try at the verification page (default 20 per 10 minutes): user codes
    /// are short, so guessing must stay hopeless (RFC 8628 §5.1).
    pub user_code_attempts_per_ip: RateLimit,
    /// Accept client ID metadata documents: a `client_id` that is an `https` URL names the JSON document
    /// describing the client (default on, as MCP clients expect).
    pub client_id_metadata_documents: bool,
    /// Sign-in attempts allowed per client IP address (default 30 per 5 minutes).
    pub login_attempts_per_ip: RateLimit,
    /// How long a client read from storage is reused by this process (default 2 seconds; zero: read on
    /// every request). Changes made through this process (RFC 7592) apply at once; changes made elsewhere
    /// (another replica, `authflow client disable`) within this delay.
    pub client_cache_ttl: Duration,
    /// Reverse proxies and load balancers whose forwarded headers are believed (default: none). When the
    /// TCP peer is in one of these networks, the per-address limits (sign-ins, user codes, registrations, token
    /// and introspection requests) count against the client address the proxies recorded in
    /// [`trusted_proxy_header`](Self::trusted_proxy_header), read right to left: addresses in these networks
    /// are skipped, the first other one is the client, and when all are trusted the leftmost is. A missing,
    /// malformed or oversized header, or an `unknown` hop, leaves the peer's address.
    ///
    /// Empty, the peer's address is used and forwarded headers are ignored, so a client cannot pick its
    /// own address; but behind a proxy every user then shares the proxy's limits, and one client can lock
    /// the others out of signing in. List only the proxies' own networks (e.g.
    /// `vec!["10.0.0.0/8".parse()?]`), never networks clients connect from.
    pub trusted_proxies: Vec<IpNetwork>,
    /// The header trusted proxies record the client in: `X-Forwarded-For` (default) or RFC 7239
    /// `Forwarded`. Only this one is read: a proxy that maintains one header passes the other through as the
    /// client wrote it.
    pub trusted_proxy_header: ProxyHeader,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            registrations_per_ip: RateLimit::new(100, Duration::from_secs(600)).expect("a valid rate limit"),
            registration_token: None,
            cors_origins: Vec::new(),
            token_requests_per_ip: RateLimit::new(600, Duration::from_secs(60)).expect("a valid rate limit"),
            introspection_requests_per_ip: RateLimit::new(6000, Duration::from_secs(60)).expect("a valid rate limit"),
            dynamic_client_ttl: None,
            access_token_format: AccessTokenFormat::Opaque,
            signing_algorithm: authflow_core::jose::Algorithm::ES256,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            grant_ttl: Duration::from_secs(90 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            clock_skew: Duration::from_secs(60),
            assertion_max_lifetime: Duration::from_secs(300),
            pkce: PkcePolicy::default(),
            redirect_uris: RedirectUriPolicy::default(),
            resource_uris: ResourcePolicy::default(),
            resources: Vec::new(),
            require_resource: false,
            session_ttl: Duration::from_secs(12 * 3600),
            consent_ttl: Duration::from_secs(90 * 24 * 3600),
            login_attempts_per_user: attempts(10, Duration::from_secs(300)),
            login_attempts_per_ip: attempts(30, Duration::from_secs(300)),
            client_id_metadata_documents: true,
            device: DevicePolicy::default(),
            user_code_attempts_per_ip: attempts(20, Duration::from_secs(600)),
            client_cache_ttl: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            trusted_proxy_header: ProxyHeader::XForwardedFor,
        }
    }
}

/// A constant, valid limit.
fn attempts(limit: u32, window: Duration) -> RateLimit {
    RateLimit::new(limit, window).unwrap_or_else(|e| unreachable!("a constant rate limit is valid: {e}"))
}
