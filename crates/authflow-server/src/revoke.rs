//! `POST /revoke` (RFC 7009).
//!
//! A client may revoke only tokens issued to it; anything else — unknown, expired, someone else's — is
//! answered 200 without effect, so the endpoint tells nobody whether a token exists. Revoking a refresh token
//! revokes its whole grant, access tokens included (§2.1).

use std::sync::Arc;

use authflow_core::TokenHash;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::client_auth;
use crate::error::{no_store, ApiError};
use crate::observe::AUDIT;
use crate::params::Form;
use crate::AppState;

pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response, ApiError> {
    let caller = client_auth::authenticate(&state, &headers, &params, client_auth::Endpoint::Revoke).await?;
    let hash = TokenHash::of(params.require("token")?);
    let now = state.clock.now();
    let mut revoked = false;
    if let Some(t) = state.store.find_access_token(&hash, now).await? {
        if t.client_id == caller.id() {
            revoked = state.store.revoke_access_token(&hash, now).await?;
        }
    } else if let Some(t) = state.store.find_refresh_token(&hash).await? {
        if t.client_id == caller.id() {
            revoked = state.store.revoke_grant(&t.grant_id, now).await?;
        }
    }
    if revoked {
        tracing::info!(target: AUDIT, client_id = caller.id(), "token revoked");
    }
    let mut response = ().into_response();
    no_store(response.headers_mut());
    Ok(response)
}
