//! Bearer tokens presented to this server (RFC 6750 §2.1): registration access tokens and access tokens at
//! `/userinfo`.

use authflow_core::{ErrorCode, OAuthError};
use axum::http::{header, HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The token of an `Authorization: Bearer …` header; `None` for any other scheme or an empty token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// 401 `invalid_token` with its RFC 6750 §3 challenge.
pub(crate) fn invalid_token() -> ApiError {
    ApiError::from(OAuthError::new(ErrorCode::InvalidToken))
        .with_challenge(HeaderValue::from_static("Bearer error=\"invalid_token\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer af_rat_x"));
        assert_eq!(bearer(&h), Some("af_rat_x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
