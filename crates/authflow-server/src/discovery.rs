//! Discovery: RFC 8414 authorization server metadata and OpenID Connect Discovery 1.0, at the well-known URLs
//! derived from the issuer (for an issuer with a path, OpenID's both by insertion and by appending, since
//! MCP clients try both).

use std::sync::Arc;

use authflow_core::jose::CLIENT_ASSERTION_ALGORITHMS;
use authflow_core::metadata::{
    well_known_url, well_known_url_appended, AuthorizationServerMetadata, OpenIdProviderMetadata,
    OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION,
};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use url::Url;

use crate::AppState;

/// RFC 8414 §3: the metadata path, with the issuer's path inserted after the well-known prefix.
pub(crate) fn routes(issuer: &Url) -> Router<Arc<AppState>> {
    let oauth = well_known_url(issuer, OAUTH_AUTHORIZATION_SERVER).path().to_owned();
    let openid_inserted = well_known_url(issuer, OPENID_CONFIGURATION).path().to_owned();
    let openid_appended = well_known_url_appended(issuer, OPENID_CONFIGURATION).path().to_owned();
    let mut router = Router::new()
        .route(&oauth, get(authorization_server_metadata))
        .route(&openid_inserted, get(openid_configuration));
    if openid_appended != openid_inserted {
        router = router.route(&openid_appended, get(openid_configuration));
    }
    router
}

/// The OpenID Provider document: the same endpoints plus what OpenID Connect adds. ID tokens are signed with
/// the deployment's `signing_algorithm` (ES256 by default, or EdDSA), and while the key rotates away from
/// another algorithm, with that one too; RS256 is not offered for signing, a deliberate departure from OpenID
/// Connect Discovery's "MUST include RS256" (see the README). authflow does *verify* RS256, in client
/// assertions: that is `token_endpoint_auth_signing_alg_values_supported`.
pub(crate) async fn openid_metadata(state: &AppState) -> OpenIdProviderMetadata {
    let mut oauth = metadata(state);
    oauth.userinfo_endpoint = Some(state.endpoint("userinfo"));
    let claims = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "preferred_username"];
    // The document never depends on storage being reachable: without the keys, the configured algorithm.
    let algorithms = state.keys.signing_algorithms(state.clock.now()).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "signing keys unavailable for discovery; advertising the configured algorithm");
        vec![state.keys.algorithm()]
    });
    OpenIdProviderMetadata {
        oauth,
        subject_types_supported: vec!["public".to_owned()],
        id_token_signing_alg_values_supported: algorithms.iter().map(|a| a.as_str().to_owned()).collect(),
        claims_supported: claims.into_iter().map(String::from).collect(),
        claims_parameter_supported: Some(false),
        request_parameter_supported: Some(false),
        request_uri_parameter_supported: Some(false),
        ..Default::default()
    }
}

/// The document, listing only what this server actually serves.
pub(crate) fn metadata(state: &AppState) -> AuthorizationServerMetadata {
    let mut m = AuthorizationServerMetadata::new(issuer_string(&state.issuer));
    let secret_methods: Vec<String> =
        ["client_secret_basic", "client_secret_post", "private_key_jwt"].into_iter().map(String::from).collect();
    m.scopes_supported = state.known_scopes();
    m.authorization_endpoint = Some(state.endpoint("authorize"));
    m.response_types_supported = vec!["code".to_owned()];
    m.response_modes_supported = vec!["query".to_owned()];
    m.authorization_response_iss_parameter_supported = Some(true);
    m.token_endpoint = Some(state.endpoint("token"));
    m.jwks_uri = Some(state.endpoint("jwks.json"));
    m.userinfo_endpoint = Some(state.endpoint("userinfo"));
    m.registration_endpoint = Some(state.endpoint("register"));
    m.grant_types_supported = state.grant_types().iter().map(|g| g.as_str().to_owned()).collect();
    m.token_endpoint_auth_methods_supported = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
        .into_iter()
        .map(String::from)
        .collect();
    // What the token endpoint accepts in `private_key_jwt` assertions, exactly (introspection and revocation
    // authenticate clients the same way).
    m.token_endpoint_auth_signing_alg_values_supported =
        CLIENT_ASSERTION_ALGORITHMS.iter().map(|a| a.as_str().to_owned()).collect();
    m.device_authorization_endpoint = Some(state.endpoint("device_authorization"));
    m.introspection_endpoint = Some(state.endpoint("introspect"));
    m.introspection_endpoint_auth_methods_supported = secret_methods;
    m.introspection_endpoint_auth_signing_alg_values_supported =
        m.token_endpoint_auth_signing_alg_values_supported.clone();
    m.revocation_endpoint = Some(state.endpoint("revoke"));
    m.revocation_endpoint_auth_methods_supported = m.token_endpoint_auth_methods_supported.clone();
    m.revocation_endpoint_auth_signing_alg_values_supported =
        m.token_endpoint_auth_signing_alg_values_supported.clone();
    m.client_id_metadata_document_supported = state.policy.client_id_metadata_documents.then_some(true);
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

async fn openid_configuration(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Json(openid_metadata(&state).await),
    )
}
