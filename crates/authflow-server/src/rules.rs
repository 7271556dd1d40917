//! Which scope and which resources a request gets: shared by the authorization and token endpoints.

use authflow_core::scope::ScopeError;
use authflow_core::validation::resource::ResourceUri;
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
    let resource = ResourceUri::parse(raw, &state.policy.resource_uris)?;
    // A listed entry equal to the request's canonical form names the same resource by definition (resources
    // compare by canonical form), so it matches without being parsed again: the usual case, on every token
    // request.
    let listed = |list: &[String]| {
        list.iter().any(|r| {
            r == resource.canonical()
                || ResourceUri::parse(r, &state.policy.resource_uris).is_ok_and(|r| r.same_resource(&resource))
        })
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
    Ok(vec![resource.canonical().to_owned()])
}

/// Narrow a stored audience to the requested resource, which must be one of them.
pub fn narrow_resources(state: &AppState, held: &[String], requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = requested else { return Ok(held.to_vec()) };
    let resource = ResourceUri::parse(raw, &state.policy.resource_uris)?;
    if held.iter().any(|h| h == resource.canonical()) {
        Ok(vec![resource.canonical().to_owned()])
    } else {
        Err(OAuthError::with_description(ErrorCode::InvalidTarget, "the grant does not cover that resource"))
    }
}
