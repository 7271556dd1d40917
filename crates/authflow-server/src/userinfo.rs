//! `GET`/`POST /userinfo` (OpenID Connect Core 1.0 §5.3): who the access token's user is.
//!
//! The token must carry `openid` and be meant for this server: issued without a `resource`, or for the
//! issuer itself. A token bound to an MCP server (RFC 8707) is that server's and is refused here like any
//! token for another audience.

use std::sync::Arc;

use authflow_core::{ErrorCode, OAuthError, TokenHash};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::bearer::{bearer, invalid_token};
use crate::error::{no_store, ApiError};
use crate::AppState;

#[derive(Debug, Serialize)]
struct UserInfo {
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
}

pub(crate) async fn userinfo(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(presented) = bearer(&headers) else {
        // RFC 6750 §3.1: no credentials, no error code.
        return Err(ApiError::from(OAuthError::with_description(
            ErrorCode::InvalidToken,
            "an access token is required",
        ))
        .with_challenge(HeaderValue::from_static("Bearer")));
    };
    let now = state.clock.now();
    let token = state.store.find_access_token(&TokenHash::of(presented), now).await?.ok_or_else(invalid_token)?;
    let issuer = state.issuer_string();
    let for_us = token.resources.is_empty() || token.resources.contains(&issuer);
    let Some(subject) = token.subject.filter(|_| for_us) else {
        // Client-credentials tokens have no user; audience-bound ones belong to their resource.
        return Err(invalid_token());
    };
    let has = |name: &str| token.scope.as_ref().is_some_and(|s| s.contains(name));
    if !has("openid") {
        return Err(ApiError::from(OAuthError::new(ErrorCode::InsufficientScope))
            .with_challenge(HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"openid\"")));
    }
    // A user removed or disabled since the token was issued is nobody to describe.
    let user = state.store.find_user(&subject).await?.filter(|u| !u.disabled).ok_or_else(invalid_token)?;
    let preferred_username = has("profile").then_some(user.username);
    let mut response = Json(UserInfo { sub: subject, preferred_username }).into_response();
    no_store(response.headers_mut());
    Ok(response)
}
