//! `POST /introspect` (RFC 7662).
//!
//! Only authenticated confidential clients may introspect. A caller sees a token as active only if the token
//! was issued to it, or — for a resource server, i.e. a client registered with `resources` — if the token's
//! audience names one of its resources. Everything else is `{"active": false}`, indistinguishable from an
//! unknown token.

use std::sync::Arc;

use authflow_core::{ClientAuthMethod, ErrorCode, OAuthError, Scope, TokenHash, UnixTime};
use authflow_store::RefreshState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::client_auth::{self, AuthenticatedClient};
use crate::error::{no_store, ApiError};
use crate::params::Form;
use crate::AppState;

/// An RFC 7662 §2.2 response.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

struct Found {
    client_id: String,
    subject: Option<String>,
    scope: Option<Scope>,
    resources: Vec<String>,
    issued_at: UnixTime,
    expires_at: UnixTime,
    token_type: &'static str,
}

fn visible_to(caller: &AuthenticatedClient, client_id: &str, resources: &[String]) -> bool {
    caller.id() == client_id || resources.iter().any(|r| caller.client.metadata.resources.iter().any(|own| own == r))
}

async fn lookup(state: &AppState, hash: &TokenHash, hint: Option<&str>) -> Result<Option<Found>, ApiError> {
    let now = state.clock.now();
    let access = async {
        Ok::<_, ApiError>(state.store.find_access_token(hash, now).await?.map(|t| Found {
            client_id: t.client_id,
            subject: t.subject,
            scope: t.scope,
            resources: t.resources,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            token_type: "Bearer",
        }))
    };
    let refresh = async {
        Ok::<_, ApiError>(
            state
                .store
                .find_refresh_token(hash)
                .await?
                .filter(|t| t.state == RefreshState::Active && t.expires_at > now)
                .map(|t| Found {
                    client_id: t.client_id,
                    subject: t.subject,
                    scope: t.scope,
                    resources: t.resources,
                    issued_at: t.issued_at,
                    expires_at: t.expires_at,
                    token_type: "refresh_token",
                }),
        )
    };
    // The hint only orders the lookups (RFC 7662 §2.1).
    if hint == Some("refresh_token") {
        match refresh.await? {
            Some(f) => Ok(Some(f)),
            None => access.await,
        }
    } else {
        match access.await? {
            Some(f) => Ok(Some(f)),
            None => refresh.await,
        }
    }
}

pub(crate) async fn introspect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response, ApiError> {
    let caller = client_auth::authenticate(&state, &headers, &params, client_auth::Endpoint::Introspect).await?;
    if caller.method == ClientAuthMethod::None {
        return Err(OAuthError::with_description(
            ErrorCode::InvalidClient,
            "introspection requires client authentication",
        )
        .into());
    }
    let token = params.require("token")?;
    let mut found = lookup(&state, &TokenHash::of(token), params.get("token_type_hint")).await?;
    if let Some(f) = &found {
        // A token of a client that was disabled, removed or has expired since is no longer active.
        let now = state.clock.now();
        let holder = crate::clients::stored(&state, &f.client_id).await?;
        if !holder.is_some_and(|c| !c.disabled && c.expires_at.is_none_or(|e| e > now)) {
            found = None;
        }
    }
    let body = match found {
        // Refresh tokens are only ever shown to the client holding them.
        Some(f)
            if (f.token_type == "Bearer" && visible_to(&caller, &f.client_id, &f.resources))
                || f.client_id == caller.id() =>
        {
            Introspection {
                active: true,
                scope: f.scope.map(|s| s.to_string()),
                sub: Some(f.subject.unwrap_or_else(|| f.client_id.clone())),
                client_id: Some(f.client_id),
                exp: Some(f.expires_at.as_secs()),
                iat: Some(f.issued_at.as_secs()),
                aud: match f.resources.as_slice() {
                    [] => None,
                    [one] => Some(serde_json::Value::String(one.clone())),
                    many => Some(serde_json::json!(many)),
                },
                iss: Some(state.issuer_string()),
                token_type: Some(f.token_type),
            }
        }
        _ => Introspection::default(),
    };
    state.metrics.introspected(body.active);
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    Ok(response)
}
