//! `POST /token` (RFC 6749 §3.2): authorization code with PKCE, refresh with rotation, client credentials,
//! and the device code (RFC 8628, see [`crate::device`]).

use std::sync::Arc;

use authflow_core::pkce::PkceChallenge;
use authflow_core::{ClientAuthMethod, ErrorCode, GrantType, OAuthError, SecretToken};
use authflow_store::{CodeConsumption, RefreshState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::client_auth::{self, AuthenticatedClient};
use crate::error::{no_store, ApiError};
use crate::issue::{self, Holder, TokenRequest};
use crate::observe::AUDIT;
use crate::params::{Form, Params};
use crate::{rules, AppState};

fn invalid_grant(why: &'static str) -> ApiError {
    OAuthError::with_description(ErrorCode::InvalidGrant, why).into()
}

pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response, ApiError> {
    let grant_type = params.require("grant_type")?;
    let grant_type: GrantType = grant_type.parse().map_err(|_| OAuthError::new(ErrorCode::UnsupportedGrantType))?;
    if !state.grant_types().contains(&grant_type) {
        return Err(OAuthError::new(ErrorCode::UnsupportedGrantType).into());
    }
    let client = client_auth::authenticate(&state, &headers, &params, client_auth::Endpoint::Token).await?;
    if !client.client.metadata.grant_types.contains(&grant_type) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient).into());
    }
    let response = match grant_type {
        GrantType::AuthorizationCode => authorization_code(&state, &client, &params).await?,
        GrantType::RefreshToken => refresh_token(&state, &client, &params).await?,
        GrantType::ClientCredentials => client_credentials(&state, &client, &params).await?,
        GrantType::DeviceCode => crate::device::poll(&state, &client, &params).await?,
    };
    tracing::info!(target: AUDIT, client_id = client.id(), grant_type = grant_type.as_str(), "token issued");
    state.metrics.token_issued(grant_type);
    let mut response = Json(response).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and RFC 9700 §4.2.4 replay handling.
async fn authorization_code(
    state: &AppState,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<issue::TokenResponse, ApiError> {
    let code = SecretToken::from_presented(params.require("code")?);
    let redirect_uri = params.require("redirect_uri")?;
    let now = state.clock.now();
    let code = match state.store.consume_code(&code.hash(), now).await? {
        CodeConsumption::NotFound => return Err(invalid_grant("unknown authorization code")),
        CodeConsumption::Replayed(code) => {
            // A code used twice was stolen or replayed: revoke everything issued from it.
            state.store.revoke_grant(&code.grant_id, now).await?;
            tracing::warn!(target: AUDIT, client_id = %code.client_id, "authorization code replayed; grant revoked");
            return Err(invalid_grant("authorization code already used"));
        }
        CodeConsumption::Consumed(code) => code,
    };
    if code.client_id != client.id() {
        return Err(invalid_grant("authorization code was issued to another client"));
    }
    if code.expires_at <= now {
        return Err(invalid_grant("authorization code expired"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(invalid_grant("redirect_uri differs from the authorization request"));
    }
    PkceChallenge::new(code.code_challenge_method, &code.code_challenge)
        .map_err(|_| OAuthError::new(ErrorCode::ServerError))?
        .verify_param(params.get("code_verifier"))?;
    let resources = rules::narrow_resources(state, &code.resources, params.get("resource"))?;
    let grant = state
        .store
        .find_grant(&code.grant_id)
        .await?
        .filter(|g| g.revoked_at.is_none())
        .ok_or_else(|| invalid_grant("the authorization was revoked"))?;
    let refresh =
        issue::refresh_token_if_allowed(state, &client.client, &grant, code.scope.clone(), code.resources.clone());
    let openid = code.scope.as_ref().is_some_and(|s| s.contains("openid"));
    let mut response = issue::respond(
        state,
        TokenRequest { holder: Holder::Grant(&grant), scope: code.scope.clone(), resources },
        refresh,
    )
    .await?;
    if openid {
        response.id_token = Some(issue::id_token(state, &code, &response.access_token).await?);
    }
    Ok(response)
}

/// RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2).
async fn refresh_token(
    state: &AppState,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<issue::TokenResponse, ApiError> {
    let presented = SecretToken::from_presented(params.require("refresh_token")?);
    let now = state.clock.now();
    let old = state
        .store
        .find_refresh_token(&presented.hash())
        .await?
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    if old.client_id != client.id() {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    match old.state {
        RefreshState::Active => {}
        RefreshState::Revoked => return Err(invalid_grant("refresh token revoked")),
        RefreshState::Rotated => {
            state.store.revoke_grant(&old.grant_id, now).await?;
            tracing::warn!(target: AUDIT, client_id = client.id(), "refresh token reused; grant revoked");
            return Err(invalid_grant("refresh token already used; the grant is revoked"));
        }
    }
    if old.expires_at <= now {
        return Err(invalid_grant("refresh token expired"));
    }
    // §6: the scope may only narrow; omitted means everything originally granted.
    let scope = match (params.get("scope"), &old.scope) {
        (None, held) => held.clone(),
        (Some(asked), held) => {
            let asked = authflow_core::Scope::parse(asked)
                .map_err(|e| OAuthError::with_description(ErrorCode::InvalidScope, format!("malformed scope: {e}")))?;
            if !held.as_ref().is_some_and(|h| asked.is_subset_of(h)) {
                return Err(
                    OAuthError::with_description(ErrorCode::InvalidScope, "scope exceeds the original grant").into()
                );
            }
            Some(asked)
        }
    };
    let resources = rules::narrow_resources(state, &old.resources, params.get("resource"))?;
    let grant = state
        .store
        .find_grant(&old.grant_id)
        .await?
        .filter(|g| g.revoked_at.is_none())
        .ok_or_else(|| invalid_grant("the authorization was revoked"))?;
    // Disabling or removing a user revokes their grants; this also covers a user disabled by other means.
    if let Some(subject) = &grant.subject {
        if state.store.find_user(subject).await?.is_none_or(|u| u.disabled) {
            return Err(invalid_grant("the user's account is disabled or removed"));
        }
    }
    let (token, record) = issue::refresh_token(state, &grant, old.scope.clone(), old.resources.clone());
    let req = TokenRequest { holder: Holder::Grant(&grant), scope, resources };
    // The access token is stored before the rotation: should storing it fail, the presented refresh token is
    // still unused and the client may simply retry. Should the rotation then lose, nobody is given the
    // access token, and the grant's revocation below ends it anyway (if opaque).
    let access = issue::store_access_token(state, &req).await?;
    if !state.store.rotate_refresh_token(&old.token_hash, &record, now).await? {
        // Lost a race with another use of the same token: that is reuse too.
        state.store.revoke_grant(&old.grant_id, now).await?;
        tracing::warn!(target: AUDIT, client_id = client.id(), "concurrent refresh token reuse; grant revoked");
        return Err(invalid_grant("refresh token already used; the grant is revoked"));
    }
    Ok(access.respond(req, Some(token)))
}

/// RFC 6749 §4.4: confidential clients acting for themselves. No refresh token (§4.4.3).
async fn client_credentials(
    state: &AppState,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<issue::TokenResponse, ApiError> {
    if client.method == ClientAuthMethod::None {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient).into());
    }
    let scope = rules::decide_scope(state, &client.client, params.get("scope"))?;
    let resources = rules::decide_resources(state, &client.client, params.get("resource"))?;
    // No grant: the token is all the client is given, and revoking it is all there is to revoke.
    issue::respond(state, TokenRequest { holder: Holder::Client(client.id()), scope, resources }, None).await
}
