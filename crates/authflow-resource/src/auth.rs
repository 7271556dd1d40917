//! [`BearerAuthLayer`]: accept only requests with a valid, audience-bound, sufficiently scoped bearer token;
//! [`RequireScopeLayer`]: more scope for some routes; and the extractors handlers read the token with.
//!
//! ```no_run
//! use axum::{routing::{get, post}, Router};
//! use authflow_resource::{Authenticated, BearerAuthLayer, IntrospectionVerifier, RequireScopeLayer, VerifiedToken};
//!
//! async fn list(token: VerifiedToken) -> String {
//!     format!("notes of {}", token.principal().unwrap_or("nobody"))
//! }
//!
//! async fn delete(auth: Authenticated) -> Result<&'static str, authflow_resource::AuthRejection> {
//!     auth.require_scopes(&["notes:admin"])?; // 403 insufficient_scope with a step-up challenge
//!     Ok("deleted")
//! }
//!
//! # fn app(verifier: IntrospectionVerifier) -> Router {
//! let metadata = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
//! Router::new()
//!     .route("/notes", get(list))
//!     .route("/notes/write", post(|| async { "written" }).layer(RequireScopeLayer::new(["notes:write"])))
//!     .route("/notes/delete", post(delete))
//!     .layer(BearerAuthLayer::new(verifier, metadata).require_scopes(["notes:read"]))
//! # }
//! ```
//!
//! ## Extracting the token
//! Only the `Authorization` header is read (RFC 6750 §2.1): exactly one, scheme `Bearer` in any case, one
//! or more spaces, then a `b64token`. A token in the query string (`?access_token=`) is refused with 400,
//! as are repeated `Authorization` headers; another scheme (`Basic …`) counts as no token. See
//! [`crate::challenge`] for every answer.
//!
//! On success the [`VerifiedToken`] is put into the request's extensions, as an `Arc<VerifiedToken>` (the
//! verifier's cached verdict itself: nothing is copied per request), where the [`VerifiedToken`] and
//! [`Authenticated`] extractors, [`VerifiedToken::of`] (and rmcp tool handlers, with the `rmcp` feature)
//! find it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use authflow_core::Scope;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Request, Response};
use tower::{Layer, Service};

use crate::challenge::{AuthRejection, Challenge, RejectionKind};
use crate::verifier::{TokenVerifier, VerifiedToken, VerifyError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Longest `Authorization` header value read.
const MAX_AUTHORIZATION_LEN: usize = 16 * 1024;

/// What the layer tells the routes behind it (kept in request extensions).
#[derive(Debug, Clone)]
pub(crate) struct AuthContext {
    pub(crate) challenge: Arc<Challenge>,
    pub(crate) required: Option<Scope>,
    /// The scope 401 challenges name, when it differs from `required`.
    pub(crate) advertised: Option<Scope>,
}

impl AuthContext {
    /// The scope a refusal of `kind` names: 401s tell a client what to ask for (MCP scope selection), 403s
    /// what this request needs.
    fn scope_for(&self, kind: &RejectionKind) -> Option<Scope> {
        match kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken(_) => {
                self.advertised.clone().or_else(|| self.required.clone())
            }
            _ => self.required.clone(),
        }
    }

    /// The answer to a request refused for `kind`, with the challenge this layer's routes give.
    fn refuse(&self, kind: RejectionKind, outcome: &'static str) -> Response<Body> {
        let scope = self.scope_for(&kind);
        rejected(AuthRejection::new(kind, Some(self.challenge.clone()), scope), outcome, None)
    }

    /// The verified token, if the verifier's `verdict` lets the request in and the token holds the required
    /// scope; else the refusal to answer with.
    #[allow(clippy::result_large_err)] // The refusal is the response itself, built only on the cold path.
    fn admit(&self, verdict: Result<Arc<VerifiedToken>, VerifyError>) -> Result<Arc<VerifiedToken>, Response<Body>> {
        let verified = match verdict {
            Ok(verified) => verified,
            Err(VerifyError::Invalid(reason)) => {
                tracing::debug!(%reason, "bearer token refused");
                return Err(self.refuse(RejectionKind::InvalidToken(reason), "invalid"));
            }
            Err(VerifyError::Unavailable(reason)) => {
                tracing::warn!(%reason, "bearer token could not be verified");
                return Err(self.refuse(RejectionKind::Unavailable, "unavailable"));
            }
        };
        if let Some(required) = &self.required {
            if !verified.scope.as_ref().is_some_and(|granted| required.is_subset_of(granted)) {
                let mut response = self.refuse(RejectionKind::InsufficientScope, "insufficient_scope");
                response.extensions_mut().insert(note(&verified, "insufficient_scope"));
                return Err(response);
            }
        }
        Ok(verified)
    }
}

/// How a request fared, left in response extensions for [`RequestLogLayer`](crate::RequestLogLayer) (on
/// admitted requests only when it asked, by a [`NoteWanted`]).
#[derive(Debug, Clone)]
pub(crate) struct AuthNote {
    pub(crate) outcome: &'static str,
    /// The verified token (shared, not copied), if there was one.
    pub(crate) token: Option<Arc<VerifiedToken>>,
}

fn scope_from<I, S>(scopes: I) -> Scope
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let tokens: Vec<String> =
        scopes.into_iter().flat_map(|s| s.as_ref().split(' ').map(str::to_owned).collect::<Vec<_>>()).collect();
    Scope::from_tokens(tokens.iter().filter(|t| !t.is_empty()))
        .unwrap_or_else(|| panic!("invalid or empty scope list: {tokens:?}"))
}

fn union(a: Option<&Scope>, b: &Scope) -> Scope {
    match a {
        Some(a) => Scope::from_tokens(a.iter().chain(b.iter())).unwrap_or_else(|| b.clone()),
        None => b.clone(),
    }
}

/// A `b64token` (RFC 6750 §2.1): `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    /// The characters before the padding, by byte value: one lookup per byte of every request's token.
    const ALLOWED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            b += 1;
        }
        table
    };
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| ALLOWED[usize::from(b)])
}

/// The bearer token of a request: `Ok(None)` when none is presented.
pub(crate) fn bearer_token(parts: &Parts) -> Result<Option<&str>, RejectionKind> {
    if let Some(query) = parts.uri.query() {
        if form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "access_token") {
            return Err(RejectionKind::InvalidRequest("access tokens are not accepted in the query string"));
        }
    }
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(RejectionKind::InvalidRequest("more than one Authorization header"));
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(RejectionKind::InvalidToken("the token is too long".into()));
    }
    let value = value.to_str().map_err(|_| RejectionKind::InvalidRequest("malformed Authorization header"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(RejectionKind::InvalidRequest("the Bearer credentials are empty"));
    }
    if !is_b64token(token) {
        return Err(RejectionKind::InvalidToken("the token is malformed".into()));
    }
    Ok(Some(token))
}

/// Requires a valid bearer token on every request (see the module docs). Builder methods configure it.
#[derive(Clone)]
pub struct BearerAuthLayer {
    verifier: Arc<dyn TokenVerifier>,
    context: Arc<AuthContext>,
}

impl std::fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer").field("verifier", &self.verifier).field("context", &self.context).finish()
    }
}

impl BearerAuthLayer {
    /// Verify tokens with `verifier`; challenges point at the RFC 9728 metadata at `resource_metadata`.
    pub fn new(verifier: impl TokenVerifier, resource_metadata: impl Into<String>) -> Self {
        Self::with_challenge(verifier, Challenge::new(resource_metadata))
    }

    /// Verify tokens with `verifier`, with a custom [`Challenge`].
    pub fn with_challenge(verifier: impl TokenVerifier, challenge: Challenge) -> Self {
        BearerAuthLayer {
            verifier: Arc::new(verifier),
            context: Arc::new(AuthContext { challenge: Arc::new(challenge), required: None, advertised: None }),
        }
    }

    /// Require these scope tokens on every request (each item may hold several, space-separated). Tokens
    /// without them get 403 `insufficient_scope`; 401 challenges name them unless
    /// [`challenge_scopes`](Self::challenge_scopes) says otherwise.
    ///
    /// # Panics
    /// If the list is empty or a token is not a valid scope token (a configuration error).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scope = scope_from(scopes);
        Arc::make_mut(&mut self.context).required = Some(scope);
        self
    }

    /// Name these scope tokens in 401 challenges instead of the required ones (each item may hold several,
    /// space-separated). MCP clients request exactly the scope a 401 names, so a server that requires
    /// `notes:read` on every request but has tools needing `notes:write` advertises both here, and clients
    /// obtain write access in one authorization. 403 `insufficient_scope` refusals still name what the
    /// request needs.
    ///
    /// ```
    /// use authflow_resource::{BearerAuthLayer, VerifiedToken, VerifyError};
    /// # #[derive(Debug)] struct V;
    /// # #[async_trait::async_trait]
    /// # impl authflow_resource::TokenVerifier for V {
    /// #     async fn verify(&self, _: &str) -> Result<VerifiedToken, VerifyError> { Err(VerifyError::invalid("x")) }
    /// # }
    /// let layer = BearerAuthLayer::new(V, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
    ///     .require_scopes(["notes:read"])
    ///     .challenge_scopes(["notes:read notes:write"]);
    /// assert_eq!(layer.challenge_scope().unwrap().to_string(), "notes:read notes:write");
    /// ```
    ///
    /// # Panics
    /// If the list is empty or a token is not a valid scope token (a configuration error).
    pub fn challenge_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scope = scope_from(scopes);
        Arc::make_mut(&mut self.context).advertised = Some(scope);
        self
    }

    /// Add `realm="…"` to challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        let ctx = Arc::make_mut(&mut self.context);
        ctx.challenge = Arc::new((*ctx.challenge).clone().realm(realm));
        self
    }

    /// The scope required on every request.
    pub fn required_scopes(&self) -> Option<&Scope> {
        self.context.required.as_ref()
    }

    /// The scope 401 challenges name: the [`challenge_scopes`](Self::challenge_scopes), else the required.
    pub fn challenge_scope(&self) -> Option<&Scope> {
        self.context.advertised.as_ref().or(self.context.required.as_ref())
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;
    fn layer(&self, inner: S) -> BearerAuth<S> {
        BearerAuth { inner, verifier: self.verifier.clone(), context: self.context.clone() }
    }
}

/// The service [`BearerAuthLayer`] wraps around routes.
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    verifier: Arc<dyn TokenVerifier>,
    context: Arc<AuthContext>,
}

impl<S> std::fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").field("verifier", &self.verifier).field("context", &self.context).finish()
    }
}

fn rejected(rejection: AuthRejection, outcome: &'static str, token: Option<Arc<VerifiedToken>>) -> Response<Body> {
    use axum::response::IntoResponse;
    let mut response = rejection.into_response();
    response.extensions_mut().insert(AuthNote { outcome, token });
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BearerAuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let token = match bearer_token(&parts) {
            Ok(Some(token)) => token,
            Ok(None) => return self.refused(self.context.refuse(RejectionKind::MissingToken, "missing")),
            Err(kind) => return self.refused(self.context.refuse(kind, "malformed")),
        };
        // A cached verdict is decided here, and the service that was polled ready serves the request.
        if let Some(verdict) = self.verifier.cached(token) {
            return match self.context.admit(verdict) {
                Ok(verified) => {
                    let note = admitted(&mut parts, verified, self.context.clone());
                    BearerAuthFuture::admitted(self.inner.call(Request::from_parts(parts, body)), note)
                }
                Err(refusal) => self.refused(refusal),
            };
        }
        // Otherwise the verifier is awaited; the clone is not ready, so the polled service goes along.
        let token = token.to_owned();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (verifier, context) = (self.verifier.clone(), self.context.clone());
        BearerAuthFuture::verifying(async move {
            let verified = match context.admit(verifier.verify_shared(&token).await) {
                Ok(verified) => verified,
                Err(refusal) => return Ok(refusal),
            };
            let note = admitted(&mut parts, verified, context);
            Ok(noted(inner.call(Request::from_parts(parts, body)).await?.map(Body::new), note))
        })
    }
}

impl<S: Clone> BearerAuth<S> {
    /// Answer with a refusal. The request never reaches the inner service, so the instance that was polled
    /// ready goes, and with it what its readiness holds (a concurrency permit, a buffer slot); a clone that
    /// is not ready takes its place.
    fn refused<F, E>(&mut self, response: Response<Body>) -> BearerAuthFuture<F, E> {
        let fresh = self.inner.clone();
        drop(std::mem::replace(&mut self.inner, fresh));
        BearerAuthFuture::refused(response)
    }
}

/// Hand the verified token and the layer's context to the routes; the note for the response, if a
/// [`RequestLogLayer`](crate::RequestLogLayer) outside wants one.
fn admitted(parts: &mut Parts, verified: Arc<VerifiedToken>, context: Arc<AuthContext>) -> Option<AuthNote> {
    let note = parts.extensions.get::<NoteWanted>().map(|_| note(&verified, "ok"));
    parts.extensions.insert(verified);
    parts.extensions.insert(context);
    note
}

/// The response with `note`, unless a route behind the layer left its own (a `RequireScopeLayer` refusal).
fn noted(mut response: Response<Body>, note: Option<AuthNote>) -> Response<Body> {
    if let Some(note) = note {
        if response.extensions().get::<AuthNote>().is_none() {
            response.extensions_mut().insert(note);
        }
    }
    response
}

/// Left in request extensions by [`RequestLogLayer`](crate::RequestLogLayer): admitted requests get an
/// [`AuthNote`] only then (refusals always do), so a stack without it allocates none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoteWanted;

pin_project_lite::pin_project! {
    /// The response future of [`BearerAuth`]: a refusal, the inner service's answer to a request let in on
    /// a cached verdict (no allocation of its own), or the verification and then that answer.
    pub struct BearerAuthFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<F, E> {
        Refused { response: Option<Response<Body>> },
        Admitted { #[pin] inner: F, note: Option<AuthNote> },
        Verifying { future: BoxFuture<Result<Response<Body>, E>> },
    }
}

impl<F, E> BearerAuthFuture<F, E> {
    fn refused(response: Response<Body>) -> Self {
        BearerAuthFuture { state: State::Refused { response: Some(response) } }
    }

    fn admitted(inner: F, note: Option<AuthNote>) -> Self {
        BearerAuthFuture { state: State::Admitted { inner, note } }
    }

    fn verifying(future: impl Future<Output = Result<Response<Body>, E>> + Send + 'static) -> Self {
        BearerAuthFuture { state: State::Verifying { future: Box::pin(future) } }
    }
}

impl<F, E> std::fmt::Debug for BearerAuthFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuthFuture")
    }
}

impl<F, B, E> Future for BearerAuthFuture<F, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("a BearerAuthFuture polled after it finished")))
            }
            StateProjection::Admitted { inner, note } => {
                let response = std::task::ready!(inner.poll(cx))?;
                Poll::Ready(Ok(noted(response.map(Body::new), note.take())))
            }
            StateProjection::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

fn note(token: &Arc<VerifiedToken>, outcome: &'static str) -> AuthNote {
    AuthNote { outcome, token: Some(token.clone()) }
}

/// Requires more scope on the routes it wraps, behind a [`BearerAuthLayer`]: a token without it gets 403
/// `insufficient_scope` naming every scope needed (the layer's and this one's), so an MCP client can step up.
///
/// ```
/// use axum::{routing::post, Router};
/// use authflow_resource::RequireScopeLayer;
///
/// let write: Router = Router::new().route("/notes", post(|| async { "ok" }).layer(RequireScopeLayer::new(["notes:write"])));
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopeLayer {
    scope: Scope,
}

impl RequireScopeLayer {
    /// Require these scope tokens (each item may hold several, space-separated).
    ///
    /// # Panics
    /// If the list is empty or a token is not a valid scope token (a configuration error).
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RequireScopeLayer { scope: scope_from(scopes) }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;
    fn layer(&self, inner: S) -> RequireScope<S> {
        RequireScope { inner, scope: self.scope.clone() }
    }
}

/// The service [`RequireScopeLayer`] wraps around routes.
#[derive(Debug, Clone)]
pub struct RequireScope<S> {
    inner: S,
    scope: Scope,
}

/// Check `token` for `scope`; the refusal names `scope` plus whatever the layer requires.
fn check_scope(
    token: Option<&VerifiedToken>,
    context: Option<&Arc<AuthContext>>,
    scope: &Scope,
) -> Result<(), AuthRejection> {
    let Some(token) = token else {
        tracing::error!("a scope check runs on a route without BearerAuthLayer");
        return Err(AuthRejection::new(RejectionKind::NotConfigured, None, None));
    };
    if token.missing_scopes(scope).is_empty() {
        return Ok(());
    }
    let needed = union(context.and_then(|c| c.required.as_ref()), scope);
    Err(AuthRejection::new(RejectionKind::InsufficientScope, context.map(|c| c.challenge.clone()), Some(needed)))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let checked = check_scope(
            VerifiedToken::of(request.extensions()),
            request.extensions().get::<Arc<AuthContext>>(),
            &self.scope,
        );
        if let Err(rejection) = checked {
            // The log names whose token fell short, as it does for the layer's own scope check.
            let token = request.extensions().get::<Arc<VerifiedToken>>().cloned();
            return Box::pin(async move { Ok(rejected(rejection, "insufficient_scope", token)) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { Ok(inner.call(request).await?.map(Body::new)) })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = AuthRejection;

    /// The token [`BearerAuthLayer`] verified; 500 if the route is not behind one.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        VerifiedToken::of(&parts.extensions).cloned().ok_or_else(|| {
            tracing::error!("VerifiedToken extracted on a route without BearerAuthLayer");
            AuthRejection::new(RejectionKind::NotConfigured, None, None)
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(VerifiedToken::of(&parts.extensions).cloned())
    }
}

/// The verified token plus what is needed to refuse with a proper challenge: use it to check scopes inside
/// a handler ([`Authenticated::require_scopes`]). Dereferences to [`VerifiedToken`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    token: VerifiedToken,
    context: Option<Arc<AuthContext>>,
}

impl Authenticated {
    /// The token.
    pub fn token(&self) -> &VerifiedToken {
        &self.token
    }

    /// The token, owned.
    pub fn into_token(self) -> VerifiedToken {
        self.token
    }

    /// `Ok` if the token has every scope token in `scopes`, else the 403 `insufficient_scope` refusal to
    /// return (it names these scopes and the layer's).
    ///
    /// # Panics
    /// If `scopes` is empty or holds an invalid scope token.
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), AuthRejection> {
        check_scope(Some(&self.token), self.context.as_ref(), &scope_from(scopes))
    }
}

impl std::ops::Deref for Authenticated {
    type Target = VerifiedToken;
    fn deref(&self) -> &VerifiedToken {
        &self.token
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = <VerifiedToken as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(Authenticated { token, context: parts.extensions.get::<Arc<AuthContext>>().cloned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    /// Accepts `good` from its cache (`cached`), refuses everything else there too.
    #[derive(Debug)]
    struct AtOnce;

    #[async_trait::async_trait]
    impl TokenVerifier for AtOnce {
        async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
            self.cached(token).expect("always at hand").map(|t| (*t).clone())
        }

        fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
            Some(match token {
                "good" => Ok(Arc::new(VerifiedToken::new("alice"))),
                _ => Err(VerifyError::invalid("unknown token")),
            })
        }
    }

    /// A service whose readiness holds something until it is used or dropped, as a concurrency permit
    /// does; `held` counts what is held.
    struct Reserving {
        held: Arc<AtomicUsize>,
        reservation: Option<Reservation>,
    }

    struct Reservation(Arc<AtomicUsize>);

    impl Drop for Reservation {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Clone for Reserving {
        fn clone(&self) -> Self {
            Reserving { held: self.held.clone(), reservation: None }
        }
    }

    impl Service<Request<Body>> for Reserving {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.reservation.is_none() {
                self.held.fetch_add(1, Ordering::SeqCst);
                self.reservation = Some(Reservation(self.held.clone()));
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Body>) -> Self::Future {
            assert!(self.reservation.take().is_some(), "called without being ready");
            std::future::ready(Ok(Response::new(Body::empty())))
        }
    }

    fn bearer(token: Option<&str>) -> Request<Body> {
        let mut request = Request::get("/mcp");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_gives_back_what_the_inner_service_reserved() {
        let held = Arc::new(AtomicUsize::new(0));
        let layer = BearerAuthLayer::new(AtOnce, "https://mcp.example.com/.well-known/oauth-protected-resource");
        let mut service = layer.layer(Reserving { held: held.clone(), reservation: None });
        for (token, status) in [(None, 401), (Some("bad"), 401), (Some("a b"), 401), (Some("good"), 200)] {
            let response = service.ready().await.unwrap().call(bearer(token)).await.unwrap();
            assert_eq!(response.status(), status, "{token:?}");
            assert_eq!(held.load(Ordering::SeqCst), 0, "{token:?}: nothing stays reserved");
        }
    }

    #[tokio::test]
    async fn admitted_responses_carry_a_note_only_when_a_log_asks() {
        let layer = BearerAuthLayer::new(AtOnce, "https://mcp.example.com/.well-known/oauth-protected-resource");
        let service = layer.layer(Reserving { held: Arc::default(), reservation: None });
        let quiet = service.clone().oneshot(bearer(Some("good"))).await.unwrap();
        assert_eq!(quiet.status(), 200);
        assert!(quiet.extensions().get::<AuthNote>().is_none());
        let mut asked = bearer(Some("good"));
        asked.extensions_mut().insert(NoteWanted);
        let noted = service.clone().oneshot(asked).await.unwrap();
        let note = noted.extensions().get::<AuthNote>().expect("a note for the log");
        assert_eq!((note.outcome, note.token.as_ref().and_then(|t| t.subject.as_deref())), ("ok", Some("alice")));
        let refused = service.oneshot(bearer(Some("bad"))).await.unwrap();
        assert_eq!(refused.extensions().get::<AuthNote>().map(|n| n.outcome), Some("invalid"), "refusals always");
    }

    #[tokio::test]
    async fn a_route_scope_refusal_names_the_token_for_the_log() {
        let layer = BearerAuthLayer::new(AtOnce, "https://mcp.example.com/.well-known/oauth-protected-resource");
        let routes =
            RequireScopeLayer::new(["notes:write"]).layer(Reserving { held: Arc::default(), reservation: None });
        let mut asked = bearer(Some("good"));
        asked.extensions_mut().insert(NoteWanted);
        let refused = layer.layer(routes).oneshot(asked).await.unwrap();
        assert_eq!(refused.status(), 403);
        let note = refused.extensions().get::<AuthNote>().expect("a note for the log");
        let subject = note.token.as_ref().and_then(|t| t.subject.as_deref());
        assert_eq!((note.outcome, subject), ("insufficient_scope", Some("alice")));
    }

    fn parts(auth: &[&str], uri: &str) -> Parts {
        let mut req = Request::builder().uri(uri);
        for a in auth {
            req = req.header(header::AUTHORIZATION, *a);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn b64token_characters_are_exactly_rfc_6750s() {
        for b in 0..=u8::MAX {
            let named = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let token = [b'a', b, b'a'];
            assert_eq!(std::str::from_utf8(&token).is_ok_and(is_b64token), named, "byte {b:#04x}");
        }
        assert!(is_b64token("a=="));
        assert!(!is_b64token("a=a"));
    }

    #[test]
    fn extraction_rules() {
        let ok = |auth: &str| bearer_token(&parts(&[auth], "/mcp")).map(|t| t.map(str::to_owned));
        assert_eq!(ok("Bearer abc.def-_~+/=="), Ok(Some("abc.def-_~+/==".into())));
        assert_eq!(ok("bearer abc"), Ok(Some("abc".into())));
        assert_eq!(ok("BEARER   abc"), Ok(Some("abc".into())));
        assert_eq!(ok("Basic YTpi"), Ok(None));
        assert_eq!(ok("Bearerabc"), Ok(None));
        assert!(matches!(ok("Bearer"), Err(RejectionKind::InvalidRequest(_))));
        assert!(matches!(ok("Bearer "), Err(RejectionKind::InvalidRequest(_))));
        assert!(matches!(ok("Bearer a b"), Err(RejectionKind::InvalidToken(_))));
        assert!(matches!(ok("Bearer a\"b"), Err(RejectionKind::InvalidToken(_))));
        assert!(matches!(ok("Bearer ==="), Err(RejectionKind::InvalidToken(_))));
        assert!(matches!(ok("Bearer abc "), Err(RejectionKind::InvalidToken(_))));
        assert_eq!(bearer_token(&parts(&[], "/mcp")), Ok(None));
        assert!(matches!(
            bearer_token(&parts(&["Bearer a", "Bearer b"], "/mcp")),
            Err(RejectionKind::InvalidRequest(_))
        ));
        assert!(matches!(bearer_token(&parts(&[], "/mcp?access_token=x")), Err(RejectionKind::InvalidRequest(_))));
        assert!(matches!(
            bearer_token(&parts(&["Bearer a"], "/mcp?a=1&access_token=x")),
            Err(RejectionKind::InvalidRequest(_))
        ));
        assert_eq!(bearer_token(&parts(&["Bearer a"], "/mcp?access_tokens=x")), Ok(Some("a")));
        let mut p = parts(&[], "/mcp");
        p.headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert!(matches!(bearer_token(&p), Err(RejectionKind::InvalidRequest(_))));
    }

    #[test]
    fn scope_lists() {
        assert_eq!(scope_from(["b a", "c"]).to_string(), "a b c");
        assert_eq!(union(Some(&scope_from(["a"])), &scope_from(["b"])).to_string(), "a b");
        assert!(std::panic::catch_unwind(|| scope_from(Vec::<&str>::new())).is_err());
        assert!(std::panic::catch_unwind(|| scope_from(["a\"b"])).is_err());
    }
}
