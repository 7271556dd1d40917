//! The one error type every endpoint answers with: an RFC error code, its HTTP status and a description.
//!
//! The codes come from RFC 6749 §4.1.2.1/§5.2 (authorization and token endpoints), RFC 6750 §3.1 (bearer
//! tokens), RFC 7009 §2.2.1 (revocation), RFC 7591 §3.2.2 (registration), RFC 8628 §3.5 (device flow) and
//! RFC 8707 §2 (resource indicators). The HTTP crates render it as JSON with `Cache-Control: no-store`.

use std::borrow::Cow;
use std::fmt;

/// An RFC-defined OAuth error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, duplicated, malformed or unsupported parameter (RFC 6749).
    InvalidRequest,
    /// Client authentication failed (RFC 6749 §5.2).
    InvalidClient,
    /// The grant (code, refresh token, credentials) is invalid, expired, revoked or mismatched (RFC 6749 §5.2).
    InvalidGrant,
    /// The client may not use this grant or response type (RFC 6749).
    UnauthorizedClient,
    /// The grant type is not supported (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// The response type is not supported (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// The requested scope is invalid, unknown, malformed or exceeds what is allowed (RFC 6749).
    InvalidScope,
    /// The resource owner or server denied the request (RFC 6749 §4.1.2.1, RFC 8628 §3.5).
    AccessDenied,
    /// An unexpected condition on the server (RFC 6749 §4.1.2.1).
    ServerError,
    /// The server is temporarily unable to handle the request, e.g. storage is down (RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
    /// The access token is expired, revoked, malformed or for another resource (RFC 6750 §3.1).
    InvalidToken,
    /// The access token lacks the scope the request needs (RFC 6750 §3.1).
    InsufficientScope,
    /// The token type hint names a type the server cannot revoke (RFC 7009 §2.2.1).
    UnsupportedTokenType,
    /// A registered redirect URI is invalid (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// A client metadata field is invalid (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// The software statement is invalid (RFC 7591 §3.2.2).
    InvalidSoftwareStatement,
    /// The software statement is not approved (RFC 7591 §3.2.2).
    UnapprovedSoftwareStatement,
    /// The user has not yet completed the device authorization (RFC 8628 §3.5).
    AuthorizationPending,
    /// The device is polling too fast; add 5 seconds to the interval (RFC 8628 §3.5).
    SlowDown,
    /// The device code has expired (RFC 8628 §3.5).
    ExpiredToken,
    /// The requested resource is invalid, unknown or not allowed (RFC 8707 §2).
    InvalidTarget,
    /// Too many requests. Not an RFC 6749 code, but the name RFC 6585 and common practice give a 429.
    RateLimited,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::UnsupportedResponseType,
        ErrorCode::InvalidScope,
        ErrorCode::AccessDenied,
        ErrorCode::ServerError,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
        ErrorCode::UnsupportedTokenType,
        ErrorCode::InvalidRedirectUri,
        ErrorCode::InvalidClientMetadata,
        ErrorCode::InvalidSoftwareStatement,
        ErrorCode::UnapprovedSoftwareStatement,
        ErrorCode::AuthorizationPending,
        ErrorCode::SlowDown,
        ErrorCode::ExpiredToken,
        ErrorCode::InvalidTarget,
        ErrorCode::RateLimited,
    ];

    /// The wire value of the `error` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// Parse a wire value.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status the code is answered with when returned in a response body.
    ///
    /// RFC 6749 §5.2 uses 400 for token-endpoint errors and 401 for `invalid_client` when the client tried to
    /// authenticate; RFC 6750 §3.1 uses 401 for `invalid_token` and 403 for `insufficient_scope`.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::RateLimited => 429,
            _ => 400,
        }
    }

    /// A short human-readable default description.
    pub const fn default_description(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "The request is missing a parameter, repeats one, or is otherwise malformed.",
            ErrorCode::InvalidClient => "Client authentication failed.",
            ErrorCode::InvalidGrant => "The grant is invalid, expired, revoked, or was issued to another client.",
            ErrorCode::UnauthorizedClient => "The client is not allowed to use this grant or response type.",
            ErrorCode::UnsupportedGrantType => "The grant type is not supported by this server.",
            ErrorCode::UnsupportedResponseType => "The response type is not supported by this server.",
            ErrorCode::InvalidScope => "The requested scope is invalid, unknown, or not allowed.",
            ErrorCode::AccessDenied => "The request was denied.",
            ErrorCode::ServerError => "The server met an unexpected condition.",
            ErrorCode::TemporarilyUnavailable => "The server is temporarily unavailable; try again later.",
            ErrorCode::InvalidToken => "The access token is invalid, expired, revoked, or for another resource.",
            ErrorCode::InsufficientScope => "The access token does not carry the scope this request needs.",
            ErrorCode::UnsupportedTokenType => "The server does not support revoking this token type.",
            ErrorCode::InvalidRedirectUri => "A redirect URI is invalid.",
            ErrorCode::InvalidClientMetadata => "A client metadata value is invalid.",
            ErrorCode::InvalidSoftwareStatement => "The software statement is invalid.",
            ErrorCode::UnapprovedSoftwareStatement => "The software statement is not approved.",
            ErrorCode::AuthorizationPending => "The user has not yet completed the authorization.",
            ErrorCode::SlowDown => "Polling too fast: increase the interval by 5 seconds.",
            ErrorCode::ExpiredToken => "The device code has expired.",
            ErrorCode::InvalidTarget => "The requested resource is invalid or not allowed.",
            ErrorCode::RateLimited => "Too many requests; retry later.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error as sent to a client: code, optional description and, for 429/503, a retry hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {}", self.description())]
pub struct OAuthError {
    code: ErrorCode,
    description: Option<Cow<'static, str>>,
    retry_after_secs: Option<u64>,
}

impl OAuthError {
    /// An error with the code's default description.
    pub const fn new(code: ErrorCode) -> Self {
        OAuthError { code, description: None, retry_after_secs: None }
    }

    /// An error with a specific description. Descriptions are sent to clients: never put secrets in them.
    pub fn with_description(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError { code, description: Some(description.into()), retry_after_secs: None }
    }

    /// Add a `Retry-After` hint (seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The description sent to the client.
    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or(self.code.default_description())
    }

    /// The retry hint, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The JSON body (`{"error": …, "error_description": …}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code.as_str(), "error_description": self.description() })
    }

    /// Shorthand for `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::with_description(ErrorCode::InvalidRequest, description)
    }
}

impl From<ErrorCode> for OAuthError {
    fn from(code: ErrorCode) -> Self {
        OAuthError::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()), "duplicate wire name {c}");
            assert!(!c.default_description().is_empty());
            // RFC 6749 §5.2: error values are within %x20-21 / %x23-5B / %x5D-7E.
            assert!(c.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(ErrorCode::InvalidRequest.status(), 400);
        assert_eq!(ErrorCode::InvalidGrant.status(), 400);
        assert_eq!(ErrorCode::InvalidClient.status(), 401);
        assert_eq!(ErrorCode::InvalidToken.status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.status(), 403);
        // RFC 8628 §3.5 returns access_denied from the token endpoint, where RFC 6749 §5.2 uses 400.
        assert_eq!(ErrorCode::AccessDenied.status(), 400);
        assert_eq!(ErrorCode::SlowDown.status(), 400);
        assert_eq!(ErrorCode::AuthorizationPending.status(), 400);
        assert_eq!(ErrorCode::TemporarilyUnavailable.status(), 503);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::InvalidTarget.status(), 400);
    }

    #[test]
    fn json_body_and_description() {
        let e = OAuthError::invalid_request("duplicate parameter: scope").retry_after(3);
        assert_eq!(e.to_json()["error"], "invalid_request");
        assert_eq!(e.to_json()["error_description"], "duplicate parameter: scope");
        assert_eq!(e.retry_after_secs(), Some(3));
        assert_eq!(OAuthError::new(ErrorCode::SlowDown).description(), ErrorCode::SlowDown.default_description());
        assert_eq!(e.to_string(), "invalid_request: duplicate parameter: scope");
    }
}
