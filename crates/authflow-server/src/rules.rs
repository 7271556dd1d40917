//! Which scope and which resources a request gets: shared by the authorization and token endpoints.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use authflow_core::lru::Lru;
use authflow_core::scope::ScopeError;
use authflow_core::validation::resource::{ResourceError, ResourcePolicy, ResourceUri};
use authflow_core::{ErrorCode, OAuthError, Scope};
use authflow_store::Client;

use crate::AppState;

/// The OpenID Connect scopes every deployment knows: `openid` asks for an ID token, `profile` for the
/// user's login name in it and at `/userinfo`.
pub const OIDC_SCOPES: [&str; 2] = ["openid", "profile"];

/// The most a client may hold: its registered scope, else every scope the server knows, else no limit.
pub fn allowed_scope(state: &AppState, client: &Client) -> Option<Scope> {
    client.metadata.scope.clone().or_else(|| Scope::from_tokens(state.known_scopes()))
}

/// The scope for a request: the requested one if allowed, or by default everything allowed except the
/// OpenID Connect scopes, which a client must ask for (an ID token nobody asked for only leaks identity).
/// RFC 6749 §3.3: an empty `scope` is malformed, not a request for the default.
pub fn decide_scope(state: &AppState, client: &Client, requested: Option<&str>) -> Result<Option<Scope>, OAuthError> {
    let allowed = allowed_scope(state, client);
    let Some(requested) = requested else {
        return Ok(allowed.and_then(|a| Scope::from_tokens(a.iter().filter(|s| !OIDC_SCOPES.contains(s)))));
    };
    let requested = Scope::parse(requested).map_err(|e: ScopeError| {
        OAuthError::with_description(ErrorCode::InvalidScope, format!("malformed scope: {e}"))
    })?;
    match &allowed {
        Some(allowed) if !requested.is_subset_of(allowed) => Err(OAuthError::with_description(
            ErrorCode::InvalidScope,
            format!("scope not allowed for this client: {}", allowed.missing(&requested).join(" ")),
        )),
        _ => Ok(Some(requested)),
    }
}

/// The audience for a request (RFC 8707): the requested resource, validated against the policy and the
/// server's and the client's allow-lists, in canonical form.
pub fn decide_resources(state: &AppState, client: &Client, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = requested else {
        if state.policy.require_resource {
            return Err(OAuthError::with_description(ErrorCode::InvalidTarget, "a resource parameter is required"));
        }
        return Ok(Vec::new());
    };
    let resource = state.resources.canonical(raw)?;
    // Resources compare by canonical form; a listed entry spelled as that form needs no lookup.
    let listed = |list: &[String]| {
        list.iter().any(|r| **r == *resource || state.resources.canonical(r).is_ok_and(|r| r == resource))
    };
    if !state.policy.resources.is_empty() && !listed(&state.policy.resources) {
        return Err(OAuthError::with_description(
            ErrorCode::InvalidTarget,
            "this server issues no tokens for that resource",
        ));
    }
    if !client.metadata.resources.is_empty() && !listed(&client.metadata.resources) {
        return Err(OAuthError::with_description(ErrorCode::InvalidTarget, "the client may not ask for that resource"));
    }
    Ok(vec![resource.as_ref().to_owned()])
}

/// Narrow a stored audience to the requested resource, which must be one of them.
pub fn narrow_resources(state: &AppState, held: &[String], requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = requested else { return Ok(held.to_vec()) };
    let resource = state.resources.canonical(raw)?;
    if held.iter().any(|h| **h == *resource) {
        Ok(vec![resource.as_ref().to_owned()])
    } else {
        Err(OAuthError::with_description(ErrorCode::InvalidTarget, "the grant does not cover that resource"))
    }
}

/// Resource indicators already validated under the server's policy, by the string as sent: token requests
/// name the same few resources over and over, and parsing one (a URL, its host through IDNA) was ~4 % of a
/// client_credentials request's CPU. Only valid ones are kept, at most [`Self::CAPACITY`], the least
/// recently used leaving first, so a client sending endless new ones costs what parsing costs anyway.
/// Built from the server's `Policy::resource_uris`, which nothing else reads once the server runs.
#[derive(Debug)]
pub(crate) struct CanonicalResources {
    policy: ResourcePolicy,
    seen: Mutex<Lru<Arc<str>, Arc<str>>>,
}

impl CanonicalResources {
    /// How many spellings are remembered.
    pub const CAPACITY: usize = 256;

    pub fn new(policy: ResourcePolicy) -> Self {
        CanonicalResources { policy, seen: Mutex::new(Lru::new(Self::CAPACITY)) }
    }

    fn seen(&self) -> MutexGuard<'_, Lru<Arc<str>, Arc<str>>> {
        // Entries are whole values: a panic elsewhere cannot leave one half-written.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The canonical form of `raw`, or why it is not a resource indicator this server accepts.
    pub fn canonical(&self, raw: &str) -> Result<Arc<str>, ResourceError> {
        if let Some(known) = self.seen().get_mut(raw) {
            return Ok(known.clone());
        }
        let canonical: Arc<str> = ResourceUri::parse(raw, &self.policy)?.canonical().into();
        self.seen().insert(raw.into(), canonical.clone());
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_resource_share_its_canonical_form() {
        let memo = CanonicalResources::new(ResourcePolicy::default());
        let a = memo.canonical("HTTPS://MCP.Example.com:443/").unwrap();
        assert_eq!(&*a, "https://mcp.example.com");
        assert_eq!(&*memo.canonical("https://mcp.example.com").unwrap(), "https://mcp.example.com");
        // The second look at a spelling is answered from memory, the same value.
        assert!(Arc::ptr_eq(&a, &memo.canonical("HTTPS://MCP.Example.com:443/").unwrap()));
        assert_eq!(memo.seen().len(), 2);
    }

    #[test]
    fn refusals_are_not_remembered_and_follow_the_policy() {
        let strict = CanonicalResources::new(ResourcePolicy::default());
        for _ in 0..2 {
            assert_eq!(strict.canonical("http://mcp.example.com/mcp"), Err(ResourceError::HttpNotLoopback));
            assert_eq!(strict.canonical("https://mcp.example.com/mcp#x"), Err(ResourceError::Fragment));
        }
        assert!(strict.seen().is_empty());
        let lenient = CanonicalResources::new(ResourcePolicy { allow_http_non_loopback: true });
        assert_eq!(&*lenient.canonical("http://mcp.example.com/mcp").unwrap(), "http://mcp.example.com/mcp");
    }

    #[test]
    fn memory_is_bounded_and_answers_stay_right() {
        let memo = CanonicalResources::new(ResourcePolicy::default());
        let n = CanonicalResources::CAPACITY * 2;
        for round in 0..2 {
            for i in 0..n {
                let c = memo.canonical(&format!("HTTPS://r{i}.example.com/mcp")).unwrap();
                assert_eq!(&*c, format!("https://r{i}.example.com/mcp"), "round {round}");
            }
        }
        assert_eq!(memo.seen().len(), CanonicalResources::CAPACITY);
    }
}
