//! OAuth errors as HTTP responses.

use authflow_core::{ErrorCode, OAuthError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An [`OAuthError`] ready to be sent: JSON body, the code's status, `Cache-Control: no-store`, and the
/// `WWW-Authenticate` / `Retry-After` headers where the RFCs call for them.
#[derive(Debug)]
pub struct ApiError {
    error: OAuthError,
    www_authenticate: Option<HeaderValue>,
}

impl ApiError {
    /// Attach a `WWW-Authenticate` challenge (RFC 6749 §5.2 for HTTP-authenticated clients, RFC 6750 §3).
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    /// The error inside.
    pub fn error(&self) -> &OAuthError {
        &self.error
    }
}

impl<E: Into<OAuthError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError { error: e.into(), www_authenticate: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        if self.error.code() == ErrorCode::ServerError || self.error.code() == ErrorCode::TemporarilyUnavailable {
            tracing::warn!(error = %self.error, "request failed on the server side");
        }
        let mut response = (status, Json(self.error.to_json())).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.error.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: nothing carrying tokens or errors about them may be
/// cached (RFC 6749 §5.1).
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
