//! The [`TokenVerifier`] trait and what it returns: a [`VerifiedToken`] or a [`VerifyError`].
//!
//! Two implementations ship with the crate: [`IntrospectionVerifier`](crate::IntrospectionVerifier) asks the
//! authorization server (RFC 7662) and works with any token; [`JwtVerifier`](crate::JwtVerifier) checks
//! RFC 9068 JWT access tokens locally against the issuer's keys. [`JwtOrIntrospection`] uses the first for
//! tokens shaped like a JWT and the second for the rest. Write your own by implementing the trait:
//!
//! ```
//! use authflow_resource::{TokenVerifier, VerifiedToken, VerifyError};
//!
//! /// Accepts one fixed token: for tests.
//! #[derive(Debug)]
//! struct Fixed;
//!
//! #[async_trait::async_trait]
//! impl TokenVerifier for Fixed {
//!     async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
//!         if token == "let-me-in" {
//!             Ok(VerifiedToken::new("alice").with_scope("notes:read".parse().unwrap()))
//!         } else {
//!             Err(VerifyError::invalid("unknown token"))
//!         }
//!     }
//! }
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use authflow_core::{Scope, UnixTime};
use serde_json::{Map, Value};

/// A token the verifier accepted: who it is for, what it allows, and until when.
///
/// The token itself is never kept, so a `VerifiedToken` can be logged, cached and put into request
/// extensions without leaking a credential.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The resource owner (`sub`): a user id, or the client id for client-credentials tokens. `None` when
    /// the authorization server did not say (RFC 7662 makes `sub` optional).
    pub subject: Option<String>,
    /// The client the token was issued to (`client_id`).
    pub client_id: Option<String>,
    /// The granted scope; `None` when the token carries none.
    pub scope: Option<Scope>,
    /// The audiences (`aud`), e.g. this resource's URI.
    pub audience: Vec<String>,
    /// When the token expires (`exp`), if the authorization server said.
    pub expires_at: Option<UnixTime>,
    /// When the token was issued (`iat`), if known.
    pub issued_at: Option<UnixTime>,
    /// The issuer (`iss`), if known.
    pub issuer: Option<String>,
    /// Every claim or introspection member as received, including the ones above.
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    /// The token [`BearerAuthLayer`](crate::BearerAuthLayer) verified for a request, from the request's
    /// extensions, where the layer keeps it as an `Arc<VerifiedToken>`; a plain `VerifiedToken` put there by
    /// a middleware of your own (e.g. one that trusts a gateway's identity headers) is found too.
    pub fn of(extensions: &axum::http::Extensions) -> Option<&VerifiedToken> {
        extensions.get::<Arc<VerifiedToken>>().map(|token| &**token).or_else(|| extensions.get::<VerifiedToken>())
    }

    /// A token for `subject` with nothing else known (for tests and custom verifiers).
    pub fn new(subject: impl Into<String>) -> VerifiedToken {
        VerifiedToken {
            subject: Some(subject.into()),
            client_id: None,
            scope: None,
            audience: Vec::new(),
            expires_at: None,
            issued_at: None,
            issuer: None,
            claims: Map::new(),
        }
    }

    /// With this scope.
    pub fn with_scope(mut self, scope: Scope) -> VerifiedToken {
        self.scope = Some(scope);
        self
    }

    /// With this client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> VerifiedToken {
        self.client_id = Some(client_id.into());
        self
    }

    /// With these audiences.
    pub fn with_audience<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audience: I) -> VerifiedToken {
        self.audience = audience.into_iter().map(Into::into).collect();
        self
    }

    /// With this expiry.
    pub fn with_expires_at(mut self, expires_at: UnixTime) -> VerifiedToken {
        self.expires_at = Some(expires_at);
        self
    }

    /// The subject, or the client id when there is no subject: the party the request acts for.
    pub fn principal(&self) -> Option<&str> {
        self.subject.as_deref().or(self.client_id.as_deref())
    }

    /// Whether the token carries scope token `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.as_ref().is_some_and(|s| s.contains(scope))
    }

    /// The tokens of `required` the token lacks (empty when it has them all).
    pub fn missing_scopes<'a>(&self, required: &'a Scope) -> Vec<&'a str> {
        match &self.scope {
            Some(granted) => granted.missing(required),
            None => required.iter().collect(),
        }
    }

    /// One claim or introspection member.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is malformed, unknown, expired, revoked, for another audience or otherwise unacceptable:
    /// answered with 401 `invalid_token`. The reason is for logs; clients get a generic description.
    #[error("invalid token: {0}")]
    Invalid(Cow<'static, str>),
    /// The verifier could not decide: the authorization server is down, slow, or answered nonsense.
    /// Answered with 503, never 401, so clients do not throw away good tokens.
    #[error("token verification unavailable: {0}")]
    Unavailable(Cow<'static, str>),
}

impl VerifyError {
    /// [`VerifyError::Invalid`].
    pub fn invalid(reason: impl Into<Cow<'static, str>>) -> VerifyError {
        VerifyError::Invalid(reason.into())
    }

    /// [`VerifyError::Unavailable`].
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> VerifyError {
        VerifyError::Unavailable(reason.into())
    }

    /// Whether this is [`VerifyError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::Unavailable(_))
    }
}

/// Turns a bearer token into a [`VerifiedToken`].
///
/// Implementations must be cheap to call concurrently and must never log the token.
#[async_trait::async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug + 'static {
    /// Verify `token` (the bearer credential, without the `Bearer ` prefix).
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError>;

    /// The same verdict, shared: what [`BearerAuthLayer`](crate::BearerAuthLayer) calls on every request. A
    /// verifier that caches verdicts overrides it to hand out its cached one without copying it.
    async fn verify_shared(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        self.verify(token).await.map(Arc::new)
    }

    /// The verdict on `token` if it is at hand without waiting (a cache hit), else `None`.
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) asks this first and calls
    /// [`verify_shared`](Self::verify_shared) only on `None`, so a cached token costs the request no
    /// future of its own. A caching verifier overrides it; the verdict must be the one `verify_shared`
    /// would give.
    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        let _ = token;
        None
    }
}

#[async_trait::async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for Arc<V> {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        (**self).verify(token).await
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        (**self).verify_shared(token).await
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        (**self).cached(token)
    }
}

#[async_trait::async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for Box<V> {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        (**self).verify(token).await
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        (**self).verify_shared(token).await
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        (**self).cached(token)
    }
}

/// Whether `token` has the shape of a compact JWS (three base64url segments): used to route it to local
/// verification. A shape is no proof; the chosen verifier still checks everything.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let b64url = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    matches!((parts.next(), parts.next(), parts.next(), parts.next()), (Some(h), Some(p), Some(s), None)
        if b64url(h) && b64url(p) && b64url(s) && h.starts_with("eyJ"))
}

/// Verifies JWTs locally and everything else by introspection: the setup for an authorization server that
/// issues RFC 9068 tokens to some clients and opaque ones to others.
///
/// ```no_run
/// # fn build(jwt: authflow_resource::JwtVerifier, introspection: authflow_resource::IntrospectionVerifier) {
/// use authflow_resource::JwtOrIntrospection;
/// let verifier = JwtOrIntrospection::new(jwt, introspection);
/// # }
/// ```
#[derive(Debug)]
pub struct JwtOrIntrospection<J, I> {
    jwt: J,
    introspection: I,
}

impl<J: TokenVerifier, I: TokenVerifier> JwtOrIntrospection<J, I> {
    /// JWT-shaped tokens go to `jwt`, the rest to `introspection`.
    pub fn new(jwt: J, introspection: I) -> Self {
        JwtOrIntrospection { jwt, introspection }
    }
}

#[async_trait::async_trait]
impl<J: TokenVerifier, I: TokenVerifier> TokenVerifier for JwtOrIntrospection<J, I> {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        if looks_like_jwt(token) {
            self.jwt.verify(token).await
        } else {
            self.introspection.verify(token).await
        }
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        if looks_like_jwt(token) {
            self.jwt.verify_shared(token).await
        } else {
            self.introspection.verify_shared(token).await
        }
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        if looks_like_jwt(token) {
            self.jwt.cached(token)
        } else {
            self.introspection.cached(token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knows `held` at once, and nothing else.
    #[derive(Debug)]
    struct Holding;

    #[async_trait::async_trait]
    impl TokenVerifier for Holding {
        async fn verify(&self, _: &str) -> Result<VerifiedToken, VerifyError> {
            Err(VerifyError::invalid("not asked"))
        }

        fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
            (token == "held").then(|| Ok(Arc::new(VerifiedToken::new("alice"))))
        }
    }

    /// A verifier's verdicts at hand reach the layer through every wrapper: a lost forward would send each
    /// request down the slow path, unseen.
    #[test]
    fn verdicts_at_hand_pass_through_the_wrappers() {
        let subject = |v: &dyn TokenVerifier, token: &str| v.cached(token).map(|r| r.unwrap().subject.clone());
        let arc: Arc<dyn TokenVerifier> = Arc::new(Holding);
        let boxed: Box<dyn TokenVerifier> = Box::new(Holding);
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        for v in [&arc as &dyn TokenVerifier, &boxed, &JwtOrIntrospection::new(Holding, Holding)] {
            assert_eq!(subject(v, "held"), Some(Some("alice".to_owned())));
            assert_eq!(subject(v, "other"), None);
        }
        // Each kind of token is asked of its own verifier.
        assert!(JwtOrIntrospection::new(Holding, Fixed).cached("held").is_none());
        assert!(JwtOrIntrospection::new(Fixed, Holding).cached("held").is_some());
        assert!(JwtOrIntrospection::new(Fixed, Holding).cached(jwt).is_none());
    }

    /// The default: nothing at hand.
    #[derive(Debug)]
    struct Fixed;

    #[async_trait::async_trait]
    impl TokenVerifier for Fixed {
        async fn verify(&self, _: &str) -> Result<VerifiedToken, VerifyError> {
            Ok(VerifiedToken::new("bob"))
        }
    }

    #[test]
    fn the_layers_shared_token_or_a_plain_one_is_found() {
        let mut extensions = axum::http::Extensions::new();
        assert!(VerifiedToken::of(&extensions).is_none());
        extensions.insert(VerifiedToken::new("from-a-middleware"));
        assert_eq!(VerifiedToken::of(&extensions).unwrap().subject.as_deref(), Some("from-a-middleware"));
        extensions.insert(Arc::new(VerifiedToken::new("from-the-layer")));
        assert_eq!(VerifiedToken::of(&extensions).unwrap().subject.as_deref(), Some("from-the-layer"));
    }

    #[test]
    fn scopes_and_principal() {
        let t = VerifiedToken::new("alice").with_scope(Scope::parse("a b").unwrap()).with_client_id("c1");
        assert!(t.has_scope("a") && !t.has_scope("c"));
        assert_eq!(t.missing_scopes(&Scope::parse("a c d").unwrap()), vec!["c", "d"]);
        assert_eq!(t.principal(), Some("alice"));
        let none = VerifiedToken { subject: None, scope: None, ..t };
        assert_eq!(none.principal(), Some("c1"));
        assert_eq!(none.missing_scopes(&Scope::parse("a").unwrap()), vec!["a"]);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        for not in ["af_at_abc", "eyJ.a", "eyJa.b.c.d", "eyJa..c", "eyJa.b+.c", "abc.def.ghi", ""] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }
}
