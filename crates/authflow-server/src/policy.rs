//! Deployment policy: lifetimes and the rules a deployment may tune. Defaults are the safe ones.

use std::time::Duration;

use authflow_core::pkce::PkcePolicy;
use authflow_core::validation::redirect_uri::RedirectUriPolicy;
use authflow_core::validation::resource::ResourcePolicy;

/// Lifetimes and rules.
#[derive(Debug, Clone)]
pub struct Policy {
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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
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
        }
    }
}
