//! `GET /jwks.json`: the public keys access tokens are signed with (RFC 7517 §5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use crate::error::ApiError;
use crate::AppState;

pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let keys = state.keys.jwks(state.clock.now()).await?;
    // Cacheable, but briefly: a new key is published before it signs anything (see keys.rs).
    Ok(([(header::CACHE_CONTROL, "public, max-age=300"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(keys)))
}
