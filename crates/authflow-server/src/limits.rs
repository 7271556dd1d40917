//! Per-address rate limits on the machine-facing endpoints (`/token`, `/introspect`): 429 JSON with
//! `Retry-After` before any work is done. Login and registration keep their own, stricter limits.

use std::sync::Arc;

use authflow_core::ratelimit::RateLimit;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::AppState;

/// Which limit a route uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limited {
    Token,
    Introspect,
}

impl Limited {
    fn limit(self, state: &AppState) -> &RateLimit {
        match self {
            Limited::Token => &state.policy.token_requests_per_ip,
            Limited::Introspect => &state.policy.introspection_requests_per_ip,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Limited::Token => "token",
            Limited::Introspect => "introspect",
        }
    }
}

pub(crate) async fn enforce(
    State((state, which)): State<(Arc<AppState>, Limited)>,
    ip: ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let key = ip.key(which.name());
    let decision = match state.rate_limit(&key, which.limit(&state)).await {
        Ok(decision) => decision,
        Err(e) => return e.into_response(),
    };
    match decision.into_result() {
        Ok(_) => next.run(request).await,
        Err(e) => {
            tracing::info!(endpoint = which.name(), "rate limited");
            ApiError::from(e).into_response()
        }
    }
}
