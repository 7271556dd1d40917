//! `GET /verify`: the ForwardAuth / `auth_request` endpoint.
//!
//! Traefik's `ForwardAuth` middleware and nginx's `auth_request` send each incoming request's headers here
//! first. Behind the bearer layer, a valid token gets 200 with the identity headers, which the proxy copies
//! onto the request it forwards (Traefik: `authResponseHeaders`; nginx: `auth_request_set`). Anything else
//! gets the layer's 401/403 with the MCP `WWW-Authenticate` challenge, which both proxies pass back to the
//! client unchanged.

use authflow_resource::VerifiedToken;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::proxy::{X_AUTH_CLIENT_ID, X_AUTH_SCOPES, X_AUTH_SUBJECT};

pub(crate) async fn verify(token: VerifiedToken) -> (StatusCode, HeaderMap) {
    let mut headers = HeaderMap::new();
    let values = [
        (X_AUTH_SUBJECT, token.subject.clone()),
        (X_AUTH_CLIENT_ID, token.client_id.clone()),
        (X_AUTH_SCOPES, token.scope.as_ref().map(ToString::to_string)),
    ];
    for (name, value) in values {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    // An answer about one token: no cache may reuse it for another request.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::OK, headers)
}
