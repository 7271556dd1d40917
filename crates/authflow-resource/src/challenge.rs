//! `WWW-Authenticate: Bearer` challenges (RFC 6750 §3, RFC 9728 §5.1) and the error responses that carry
//! them.
//!
//! | situation | status | challenge |
//! |---|---|---|
//! | no bearer token | 401 | `Bearer resource_metadata="…"` (no `error`: RFC 6750 §3.1) |
//! | token invalid, expired, revoked, wrong audience | 401 | `Bearer error="invalid_token", resource_metadata="…"` |
//! | token lacks a scope | 403 | `Bearer error="insufficient_scope", scope="…", resource_metadata="…"` |
//! | malformed request (two `Authorization` headers, token in the query) | 400 | `Bearer error="invalid_request", …` |
//! | verifier unavailable (authorization server down) | 503 | none; `Retry-After` |
//!
//! When scopes are required, 401 challenges carry `scope="…"` too, so an MCP client knows what to ask for
//! (MCP authorization, scope selection); [`BearerAuthLayer::challenge_scopes`](crate::BearerAuthLayer::challenge_scopes)
//! names more there than every request needs, e.g. the write scope some tools check themselves. Every response has a JSON body and `Cache-Control: no-store`.
//!
//! ```
//! use authflow_resource::challenge::Challenge;
//!
//! let c = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
//! assert_eq!(
//!     c.header(Some("insufficient_scope"), Some(&"notes:write".parse().unwrap())).to_str().unwrap(),
//!     r#"Bearer error="insufficient_scope", scope="notes:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
//! );
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use authflow_core::{ErrorCode, OAuthError, Scope};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// How long clients are told to wait when the verifier is unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// The parameters every challenge of one protected resource carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    resource_metadata: Option<String>,
    realm: Option<String>,
}

/// A quoted-string (RFC 9110 §5.6.4) with `"` and `\` escaped and control characters dropped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl Challenge {
    /// Challenges that point clients at the RFC 9728 metadata at `resource_metadata` (the URL
    /// [`ProtectedResource::metadata_url`](crate::ProtectedResource::metadata_url) gives).
    pub fn new(resource_metadata: impl Into<String>) -> Challenge {
        Challenge { resource_metadata: Some(resource_metadata.into()), realm: None }
    }

    /// Challenges without a metadata URL (not what MCP clients need; for other bearer-protected APIs).
    pub fn without_metadata() -> Challenge {
        Challenge { resource_metadata: None, realm: None }
    }

    /// Add `realm="…"`.
    pub fn realm(mut self, realm: impl Into<String>) -> Challenge {
        self.realm = Some(realm.into());
        self
    }

    /// The metadata URL, if any.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// The `WWW-Authenticate` value with an optional error code and scope.
    pub fn header(&self, error: Option<&str>, scope: Option<&Scope>) -> HeaderValue {
        let mut params = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(format!("realm={}", quoted(realm)));
        }
        if let Some(error) = error {
            params.push(format!("error={}", quoted(error)));
        }
        if let Some(scope) = scope {
            params.push(format!("scope={}", quoted(&scope.to_string())));
        }
        if let Some(url) = &self.resource_metadata {
            params.push(format!("resource_metadata={}", quoted(url)));
        }
        let value = if params.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", params.join(", ")) };
        // Only visible ASCII and spaces can reach here except through a non-ASCII realm or URL.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// Why [`BearerAuthLayer`](crate::BearerAuthLayer), [`RequireScopeLayer`](crate::RequireScopeLayer) or an
/// extractor refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No bearer token (no `Authorization` header, or another scheme): 401 without an error code.
    MissingToken,
    /// The request is malformed (several `Authorization` headers, a token in the query string): 400.
    InvalidRequest(&'static str),
    /// The token was refused: 401 `invalid_token`. The reason goes into the body's description.
    InvalidToken(Cow<'static, str>),
    /// The token lacks scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// The verifier could not decide: 503.
    Unavailable,
    /// The route expects a verified token but no [`BearerAuthLayer`](crate::BearerAuthLayer) ran: 500.
    NotConfigured,
}

/// A refusal, ready to be answered (it implements [`IntoResponse`]).
#[derive(Debug, Clone)]
pub struct AuthRejection {
    kind: RejectionKind,
    challenge: Option<Arc<Challenge>>,
    scope: Option<Scope>,
}

impl AuthRejection {
    /// A refusal of `kind`, challenged with `challenge`, naming `scope` (the scope needed) if given.
    pub fn new(kind: RejectionKind, challenge: Option<Arc<Challenge>>, scope: Option<Scope>) -> AuthRejection {
        AuthRejection { kind, challenge, scope }
    }

    /// What went wrong.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The scope the challenge names.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            RejectionKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope => StatusCode::FORBIDDEN,
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> OAuthError {
        let e = |code, d: Cow<'static, str>| OAuthError::with_description(code, d);
        match &self.kind {
            RejectionKind::MissingToken => {
                e(ErrorCode::InvalidToken, "This resource requires a bearer access token.".into())
            }
            RejectionKind::InvalidRequest(why) => e(ErrorCode::InvalidRequest, Cow::Borrowed(why)),
            RejectionKind::InvalidToken(why) => e(ErrorCode::InvalidToken, sanitise(why)),
            RejectionKind::InsufficientScope => {
                let needed = self.scope.as_ref().map(Scope::to_string).unwrap_or_default();
                e(ErrorCode::InsufficientScope, format!("This request needs the scope: {needed}").into())
            }
            RejectionKind::Unavailable => OAuthError::new(ErrorCode::TemporarilyUnavailable),
            RejectionKind::NotConfigured => {
                e(ErrorCode::ServerError, "The route is not protected by a bearer-token layer.".into())
            }
        }
    }

    /// The `WWW-Authenticate` value, if this refusal carries one.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let challenge = self.challenge.as_deref()?;
        match &self.kind {
            RejectionKind::MissingToken => Some(challenge.header(None, self.scope.as_ref())),
            RejectionKind::InvalidToken(_) => Some(challenge.header(Some("invalid_token"), self.scope.as_ref())),
            RejectionKind::InvalidRequest(_) => Some(challenge.header(Some("invalid_request"), None)),
            RejectionKind::InsufficientScope => Some(challenge.header(Some("insufficient_scope"), self.scope.as_ref())),
            RejectionKind::Unavailable | RejectionKind::NotConfigured => None,
        }
    }
}

/// Error descriptions are `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2).
fn sanitise(s: &str) -> Cow<'static, str> {
    s.chars().filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)).collect::<String>().into()
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body().to_json())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(challenge) = self.www_authenticate() {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.kind == RejectionKind::Unavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn reject(kind: RejectionKind, scope: Option<&str>) -> AuthRejection {
        AuthRejection::new(kind, Some(Arc::new(Challenge::new(PRM))), scope.map(|s| s.parse().unwrap()))
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let missing = reject(RejectionKind::MissingToken, None);
        assert_eq!(missing.status(), 401);
        assert_eq!(missing.www_authenticate().unwrap(), format!("Bearer resource_metadata=\"{PRM}\"").as_str());
        let missing = reject(RejectionKind::MissingToken, Some("b a"));
        assert_eq!(
            missing.www_authenticate().unwrap(),
            format!("Bearer scope=\"a b\", resource_metadata=\"{PRM}\"").as_str()
        );
        let invalid = reject(RejectionKind::InvalidToken("expired".into()), None);
        assert_eq!(
            invalid.www_authenticate().unwrap(),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{PRM}\"").as_str()
        );
        let scope = reject(RejectionKind::InsufficientScope, Some("notes:write"));
        assert_eq!(scope.status(), 403);
        assert_eq!(
            scope.www_authenticate().unwrap(),
            format!("Bearer error=\"insufficient_scope\", scope=\"notes:write\", resource_metadata=\"{PRM}\"").as_str()
        );
        assert_eq!(reject(RejectionKind::Unavailable, None).www_authenticate(), None);
        assert_eq!(reject(RejectionKind::InvalidRequest("x"), None).status(), 400);
    }

    #[test]
    fn values_are_quoted_safely() {
        let c = Challenge::new("https://x.example/a").realm("my \"realm\"\\\n");
        assert_eq!(
            c.header(None, None).to_str().unwrap(),
            r#"Bearer realm="my \"realm\"\\", resource_metadata="https://x.example/a""#
        );
        assert_eq!(Challenge::without_metadata().header(None, None), "Bearer");
        assert_eq!(sanitise("bad \"quote\" \\ é\n"), "bad quote  ");
    }
}
