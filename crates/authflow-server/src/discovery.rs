//! Discovery: RFC 8414 authorization server metadata, at the well-known URL derived from the issuer.

use std::sync::Arc;

use authflow_core::jose::Algorithm;
use authflow_core::metadata::{well_known_url, AuthorizationServerMetadata};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use url::Url;

use crate::AppState;

/// RFC 8414 §3: the metadata path, with the issuer's path inserted after the well-known prefix.
pub(crate) fn routes(issuer: &Url) -> Router<Arc<AppState>> {
    let path = well_known_url(issuer, "oauth-authorization-server").path().to_owned();
    Router::new().route(&path, get(authorization_server_metadata))
}

/// The document, listing only what this server actually serves.
pub(crate) fn metadata(state: &AppState) -> AuthorizationServerMetadata {
    let mut m = AuthorizationServerMetadata::new(issuer_string(&state.issuer));
    let secret_methods: Vec<String> =
        ["client_secret_basic", "client_secret_post", "private_key_jwt"].into_iter().map(String::from).collect();
    m.scopes_supported = state.scopes.clone();
    m.authorization_endpoint = Some(state.endpoint("authorize"));
    m.response_types_supported = vec!["code".to_owned()];
    m.response_modes_supported = vec!["query".to_owned()];
    m.authorization_response_iss_parameter_supported = Some(true);
    m.token_endpoint = Some(state.endpoint("token"));
    m.jwks_uri = Some(state.endpoint("jwks.json"));
    m.registration_endpoint = Some(state.endpoint("register"));
    m.grant_types_supported = state.grant_types().iter().map(|g| g.as_str().to_owned()).collect();
    m.token_endpoint_auth_methods_supported = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
        .into_iter()
        .map(String::from)
        .collect();
    m.token_endpoint_auth_signing_alg_values_supported = Algorithm::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    m.introspection_endpoint = Some(state.endpoint("introspect"));
    m.introspection_endpoint_auth_methods_supported = secret_methods;
    m.introspection_endpoint_auth_signing_alg_values_supported =
        m.token_endpoint_auth_signing_alg_values_supported.clone();
    m.revocation_endpoint = Some(state.endpoint("revoke"));
    m.revocation_endpoint_auth_methods_supported = m.token_endpoint_auth_methods_supported.clone();
    m.revocation_endpoint_auth_signing_alg_values_supported =
        m.token_endpoint_auth_signing_alg_values_supported.clone();
    m.code_challenge_methods_supported =
        state.policy.pkce.supported_methods().iter().map(|c| c.as_str().to_owned()).collect();
    m
}

/// The issuer as clients must compare it: exactly as configured, without a trailing slash on a bare origin
/// (`Url` would add one, and RFC 8414 §3.3 compares issuers as strings).
pub(crate) fn issuer_string(issuer: &Url) -> String {
    let s = issuer.as_str();
    if issuer.path() == "/" {
        s.trim_end_matches('/').to_owned()
    } else {
        s.to_owned()
    }
}

async fn authorization_server_metadata(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    // Public and the same for everyone: cacheable for a short while, readable from browsers (MCP Inspector).
    (
        [(header::CACHE_CONTROL, "public, max-age=300"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Json(metadata(&state)),
    )
}
