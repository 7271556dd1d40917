//! `/health` (the process is up) and `/ready` (its storage, and Redis when configured, answer).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/health", get(health)).route("/ready", get(ready))
}

async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let pinged = match state.store.ping().await {
        Ok(()) => state.limiter.ping().await,
        Err(e) => Err(e),
    };
    match pinged {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready", "storage": state.store.backend() }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "storage": state.store.backend() })),
            )
        }
    }
}
