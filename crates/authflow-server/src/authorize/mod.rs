//! The authorization endpoint (OAuth 2.1 §4.1): where a person signs in and approves a client.
//!
//! | route | does |
//! |---|---|
//! | `GET  {base}/authorize` | validate the request; then issue a code (signed in, consent remembered), or show the consent page (signed in), or the sign-in page |
//! | `POST {base}/authorize` | the same request as an `application/x-www-form-urlencoded` body (OpenID Connect Core §3.1.2.1), handled exactly as `GET` |
//! | `POST {base}/authorize/login` | check the credentials; start a session and go back to `GET /authorize` |
//! | `POST {base}/authorize/consent` | `decision=approve`: remember the consent and issue a code; `deny`: `access_denied` |
//! | `POST {base}/authorize/upstream/{id}`, `GET {base}/authorize/upstream/callback` | sign in at an upstream identity provider instead (see [`crate::upstream`]) |
//!
//! Every post carries the whole authorization request (re-encoded in a hidden field) and a CSRF token, and
//! the request is validated again in full, so no step trusts what an earlier one decided.
//!
//! `POST /authorize` is the authorization *request*, not a step: like a `GET` (a top-level navigation, which
//! a cross-site page can start just as well) it approves nothing by itself. It reads only the authorization
//! parameters, never a form's `csrf_token` or `decision`, and leads to the same sign-in or consent page, whose
//! own posts keep their CSRF checks. A cross-site post carries no `SameSite=Lax` session cookie, so there it
//! always starts at the sign-in page.

mod login;
mod request;
mod respond;

use std::net::IpAddr;
use std::sync::Arc;

use authflow_core::OAuthError;
use authflow_store::StoreError;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub(crate) use self::login::{address_key, authenticate as authenticate_user, Verdict};
pub(crate) use self::request::{validate as validate_request, AuthorizationRequest};
pub(crate) use self::respond::see_other;
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::pages::{ConsentPage, LoginNotice, LoginPage, Problem, SignInOptions, UpstreamButton};
use crate::params::{Form, Params, Query};
use crate::session::{self, SignedIn};
use crate::AppState;

pub(crate) fn routes(base: &str) -> Router<Arc<AppState>> {
    Router::new()
        .route(&format!("{base}/authorize"), get(authorize).post(authorize_posted))
        .route(&format!("{base}/authorize/login"), post(login))
        .route(&format!("{base}/authorize/consent"), post(consent))
        .route(&format!("{base}/authorize/upstream/callback"), get(crate::upstream::callback))
        .route(&format!("{base}/authorize/upstream/{{provider}}"), post(crate::upstream::start))
}

/// Why a step stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Tell the person at the browser; the client hears nothing.
    Show(Problem),
    /// Tell the client, at its (validated) redirect URI.
    Redirect {
        /// The redirect URI as sent.
        redirect_uri: String,
        /// The client's `state`.
        state: Option<String>,
        /// What went wrong.
        error: OAuthError,
    },
}

impl Failure {
    pub(crate) fn respond(self, state: &AppState) -> Response {
        match self {
            Failure::Show(problem) => problem.respond(state),
            Failure::Redirect { redirect_uri, state: client_state, error } => {
                respond::error_to_client(state, &redirect_uri, client_state.as_deref(), &error)
            }
        }
    }
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Self {
        Failure::Show(p)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Show(OAuthError::from(e).into())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Show(e.error().clone().into())
    }
}

/// `GET /authorize`.
async fn authorize(State(state): State<Arc<AppState>>, headers: HeaderMap, query: Result<Query, ApiError>) -> Response {
    let params = query.map(|Query(params)| params);
    start(&state, &headers, params).await.unwrap_or_else(|f| f.respond(&state))
}

/// `POST /authorize`: the parameters in a form body (OpenID Connect Core §3.1.2.1), parsed as strictly as
/// the query of a `GET` (repeated names refused, bodies over [`crate::MAX_BODY_BYTES`] refused). Parameters
/// in the query as well would leave two sources for one request: refused, like a repeated parameter.
async fn authorize_posted(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form, ApiError>,
) -> Response {
    let params = match uri.query() {
        Some(query) if !query.is_empty() => Err(ApiError::from(OAuthError::invalid_request(
            "a posted authorization request carries its parameters in the body only, not in the query",
        ))),
        _ => form.map(|Form(params)| params),
    };
    start(&state, &headers, params).await.unwrap_or_else(|f| f.respond(&state))
}

/// `POST /authorize/login`.
async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form, ApiError>,
) -> Response {
    sign_in(&state, ip, &headers, form).await.unwrap_or_else(|f| f.respond(&state))
}

/// `POST /authorize/consent`.
async fn consent(State(state): State<Arc<AppState>>, headers: HeaderMap, form: Result<Form, ApiError>) -> Response {
    decide(&state, &headers, form).await.unwrap_or_else(|f| f.respond(&state))
}

/// The authorization request, from a query or a posted form. A malformed one (e.g. a repeated parameter, or a
/// body that is not a form) is shown, not redirected: which client and redirect URI it meant cannot be trusted.
async fn start(state: &AppState, headers: &HeaderMap, params: Result<Params, ApiError>) -> Result<Response, Failure> {
    let params = params?;
    let request = request::validate(state, params).await?;
    let Some(signed_in) = session::current(state, headers).await? else {
        return Ok(login_page(state, headers, &request, "", LoginNotice::None).await);
    };
    let remembered = state.store.find_consent(&signed_in.user.id, &request.client.client_id, state.clock.now()).await?;
    if remembered.is_some_and(|c| request.is_covered_by(&c)) {
        respond::issue_code(state, &request, &signed_in).await
    } else {
        Ok(consent_page(state, headers, &request, &signed_in))
    }
}

async fn sign_in(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    form: Result<Form, ApiError>,
) -> Result<Response, Failure> {
    let Form(form) = form?;
    let request = posted_request(state, headers, &form).await?;
    if !state.upstream.local_passwords {
        return Err(Problem::bad_request("Signing in with a password is turned off on this server.").into());
    }
    let username = form.get("username");
    match login::authenticate(state, ip, username, form.get("password")).await? {
        Verdict::SignedIn(user) => {
            let cookie = session::start(state, &user).await?;
            let mut response = respond::see_other(&back_to_start(state, &request));
            response.headers_mut().append(header::SET_COOKIE, cookie);
            Ok(response)
        }
        Verdict::Refused(notice) => Ok(login_page(state, headers, &request, username.unwrap_or(""), notice).await),
    }
}

async fn decide(state: &AppState, headers: &HeaderMap, form: Result<Form, ApiError>) -> Result<Response, Failure> {
    let Form(form) = form?;
    let request = posted_request(state, headers, &form).await?;
    let Some(signed_in) = session::current(state, headers).await? else {
        // Signed out (or the session expired) while the page was open: sign in again.
        return Ok(respond::see_other(&back_to_start(state, &request)));
    };
    match form.get("decision") {
        Some("approve") => {
            let consent = request.consent(&signed_in.user.id, state.clock.now(), state);
            state.store.upsert_consent(&consent).await?;
            respond::issue_code(state, &request, &signed_in).await
        }
        Some("deny") => Ok(respond::access_denied(state, &request)),
        _ => Err(Problem::bad_request("Choose Approve or Deny.").into()),
    }
}

/// The authorization request a form posted back, after the CSRF check, validated again in full.
pub(crate) async fn posted_request(
    state: &AppState,
    headers: &HeaderMap,
    form: &Params,
) -> Result<AuthorizationRequest, Failure> {
    let carried = form.get("request").map(|r| Params::parse(r.as_bytes()));
    if !session::csrf_ok(state, headers, form.get("csrf_token")) {
        let restart = carried.and_then(Result::ok).map(|p| p.to_query());
        return Err(Problem::forged_form(restart).into());
    }
    let params = carried
        .ok_or_else(|| Problem::bad_request("The form does not carry the authorization request."))?
        .map_err(Problem::from)?;
    request::validate(state, params).await
}

/// `GET /authorize` again with the same request.
pub(crate) fn back_to_start(state: &AppState, request: &AuthorizationRequest) -> String {
    format!("{}?{}", state.endpoint("authorize"), request.encoded())
}

pub(crate) fn with_cookie(page: crate::pages::Page, cookie: Option<HeaderValue>) -> Response {
    match cookie {
        Some(cookie) => page.header(header::SET_COOKIE, cookie).into_response(),
        None => page.into_response(),
    }
}

async fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    username: &str,
    notice: LoginNotice,
) -> Response {
    let csrf = session::csrf_token(state, headers);
    let providers = &state.upstream.providers;
    let options = SignInOptions {
        upstream: providers.iter().map(|p| UpstreamButton { id: p.id(), name: p.name() }).collect(),
        upstream_targets: crate::upstream::form_targets(state).await,
        no_passwords: !state.upstream.local_passwords,
    };
    let page = LoginPage {
        client_name: request.client_name(),
        request: &request.encoded(),
        csrf_token: &csrf.value,
        username,
        notice,
        action: "/authorize/login",
        redirect_uri: Some(&request.redirect_uri),
    }
    .render_with(state, &options);
    with_cookie(page, csrf.set_cookie)
}

fn consent_page(state: &AppState, headers: &HeaderMap, request: &AuthorizationRequest, who: &SignedIn) -> Response {
    let csrf = session::csrf_token(state, headers);
    let page = ConsentPage {
        client_name: request.client_name(),
        client_id: &request.client.client_id,
        origin: request.client.origin,
        username: &who.user.username,
        scopes: request.scope.as_ref().map(|s| s.iter().collect()).unwrap_or_default(),
        resources: &request.resources,
        redirect_uri: Some(&request.redirect_uri),
        user_code: None,
        action: "/authorize/consent",
        request: &request.encoded(),
        csrf_token: &csrf.value,
    }
    .render(state);
    with_cookie(page, csrf.set_cookie)
}
