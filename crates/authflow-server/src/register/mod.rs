//! Dynamic client registration: `POST /register` (RFC 7591) and the client configuration endpoint
//! `GET/PUT/DELETE /register/{client_id}` (RFC 7592).
//!
//! Registration is open by default because MCP clients register themselves with servers they have never
//! seen; it is bounded by a per-address rate limit and body-size limit, can be closed with an initial access
//! token, and dynamic clients can be given a lifetime. Each registration access token reaches only its own
//! client's configuration.

pub mod metadata;

use std::sync::Arc;

use authflow_core::{ErrorCode, OAuthError, SecretToken, TokenHash, TokenKind};
use authflow_store::{Client, ClientOrigin, StoreError};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::bearer::{bearer, invalid_token};
use crate::error::{no_store, ApiError};
use crate::observe::AUDIT;
use crate::{AppState, OsEntropy};

pub(crate) fn routes(base: &str) -> Router<Arc<AppState>> {
    Router::new()
        .route(&format!("{base}/register"), post(register))
        .route(&format!("{base}/register/{{client_id}}"), axum::routing::get(read).put(update).delete(remove))
}

fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request("the body must be application/json").into());
    }
    serde_json::from_slice(body).map_err(|_| {
        OAuthError::with_description(ErrorCode::InvalidClientMetadata, "the body is not valid JSON").into()
    })
}

fn created(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// The RFC 7591 §3.2.1 / RFC 7592 §3 response body.
fn describe(state: &AppState, c: &Client, secret: Option<&SecretToken>, registration: Option<&SecretToken>) -> Value {
    let mut body = metadata::to_json(&c.metadata);
    body.insert("client_id".into(), c.client_id.clone().into());
    body.insert("client_id_issued_at".into(), c.created_at.as_secs().into());
    if let Some(secret) = secret {
        body.insert("client_secret".into(), secret.expose().into());
    }
    if c.metadata.token_endpoint_auth_method.uses_secret() {
        // 0 means the secret does not expire on its own; it goes with the client.
        body.insert("client_secret_expires_at".into(), c.expires_at.map_or(0, |e| e.as_secs()).into());
    }
    if let Some(token) = registration {
        body.insert("registration_access_token".into(), token.expose().into());
    }
    body.insert("registration_client_uri".into(), format!("{}/{}", state.endpoint("register"), c.client_id).into());
    Value::Object(body)
}

async fn register(
    State(state): State<Arc<AppState>>,
    ip: crate::client_ip::ClientIp,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let key = ip.key("register");
    state.rate_limit(&key, &state.policy.registrations_per_ip).await?.into_result()?;
    if let Some(required) = &state.policy.registration_token {
        if !bearer(&headers).is_some_and(|t| TokenHash::of(t) == *required) {
            return Err(invalid_token());
        }
    }
    let body = json_body(&headers, &body)?;
    let requested = metadata::validate(&body, &state.policy.redirect_uris, &state.known_scopes())?;
    let method = requested.metadata.token_endpoint_auth_method;
    let secret = method.uses_secret().then(|| SecretToken::generate(TokenKind::ClientSecret, now, &mut OsEntropy));
    let registration = SecretToken::generate(TokenKind::RegistrationToken, now, &mut OsEntropy);
    let client = Client {
        client_id: crate::random_id(),
        secret_hash: secret.as_ref().map(SecretToken::hash),
        registration_token_hash: Some(registration.hash()),
        metadata: requested.metadata,
        origin: ClientOrigin::Dynamic,
        created_at: now,
        expires_at: state.policy.dynamic_client_ttl.map(|ttl| now + ttl),
        disabled: false,
    };
    state.store.insert_client(&client).await?;
    tracing::info!(target: AUDIT, client_id = %client.client_id, method = %method, "client registered");
    Ok(created(StatusCode::CREATED, describe(&state, &client, secret.as_ref(), Some(&registration))))
}

/// The client a registration access token manages. RFC 7592 §2: an unknown client or a token that is not its
/// own is 401, never 404, so nothing is learnt about which clients exist.
async fn authorized(state: &AppState, headers: &HeaderMap, client_id: &str) -> Result<Client, ApiError> {
    let token = bearer(headers).ok_or_else(invalid_token)?;
    let client = state.store.find_client(client_id).await?.ok_or_else(invalid_token)?;
    let expired = client.expires_at.is_some_and(|e| e <= state.clock.now());
    // A client an administrator disabled is theirs to manage, not its own.
    match client.registration_token_hash {
        Some(hash) if hash.matches(token) && !expired && !client.disabled => Ok(client),
        _ => Err(invalid_token()),
    }
}

async fn read(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = authorized(&state, &headers, &client_id).await?;
    Ok(created(StatusCode::OK, describe(&state, &client, None, None)))
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut client = authorized(&state, &headers, &client_id).await?;
    let body = json_body(&headers, &body)?;
    // RFC 7592 §2.2: the body repeats the client id, and a secret, if sent, must be the current one.
    if body.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(OAuthError::with_description(ErrorCode::InvalidRequest, "client_id must match the URL").into());
    }
    if let Some(sent) = body.get("client_secret").and_then(Value::as_str) {
        if !client.secret_hash.is_some_and(|h| h.matches(sent)) {
            return Err(
                OAuthError::with_description(ErrorCode::InvalidClientMetadata, "client_secret does not match").into()
            );
        }
    }
    let requested = metadata::validate(&body, &state.policy.redirect_uris, &state.known_scopes())?;
    let method = requested.metadata.token_endpoint_auth_method;
    // A new secret when asked for (`"rotate_secret": true`, an authflow extension) or when the client now needs
    // one; none when it no longer does.
    let rotate = body.get("rotate_secret").and_then(Value::as_bool).unwrap_or(false);
    let now = state.clock.now();
    let secret = (method.uses_secret() && (rotate || client.secret_hash.is_none()))
        .then(|| SecretToken::generate(TokenKind::ClientSecret, now, &mut OsEntropy));
    if let Some(s) = &secret {
        client.secret_hash = Some(s.hash());
    } else if !method.uses_secret() {
        client.secret_hash = None;
    }
    // The registration access token rotates on every update (RFC 7592 §3 allows it).
    let registration = SecretToken::generate(TokenKind::RegistrationToken, now, &mut OsEntropy);
    client.registration_token_hash = Some(registration.hash());
    client.metadata = requested.metadata;
    let updated = state.store.update_client(&client).await?;
    state.clients.forget(&client.client_id);
    if !updated {
        return Err(invalid_token());
    }
    tracing::info!(target: AUDIT, client_id = %client.client_id, rotated_secret = secret.is_some(), "client registration updated");
    Ok(created(StatusCode::OK, describe(&state, &client, secret.as_ref(), Some(&registration))))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = authorized(&state, &headers, &client_id).await?;
    let deleted = state.store.delete_client(&client.client_id).await;
    state.clients.forget(&client.client_id);
    match deleted {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(OAuthError::new(ErrorCode::ServerError).into()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(target: AUDIT, client_id = %client.client_id, "client registration deleted");
    let mut response = StatusCode::NO_CONTENT.into_response();
    no_store(response.headers_mut());
    Ok(response)
}
