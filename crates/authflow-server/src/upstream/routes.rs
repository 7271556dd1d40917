//! The two routes of the round trip (see the module docs of [`super`]).

use std::sync::Arc;

use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_core::token::constant_time_eq;
use authflow_core::TokenHash;
use authflow_store::{StoreError, User};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::{self, Pending};
use super::{github, oidc, Identity, UpstreamProvider};
use crate::authorize::{back_to_start, posted_request, see_other, validate_request, Failure};
use crate::error::ApiError;
use crate::observe::AUDIT;
use crate::pages::UpstreamProblem;
use crate::params::{Form, Params, Query};
use crate::{random_id, session, AppState, OsEntropy};

/// Why a round trip stopped, told to the person at the browser (never redirected anywhere).
#[derive(Debug)]
pub(crate) struct UpstreamError {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// The authorization request to start again with, when it is known.
    restart: Option<String>,
}

impl UpstreamError {
    fn new(status: StatusCode, title: &'static str, message: String) -> Self {
        UpstreamError { status, title, message, restart: None }
    }

    /// The provider (or its keys) cannot be reached or used now.
    pub(crate) fn unavailable(message: String) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "The sign-in service is unavailable", message)
    }

    /// The provider answered, but not as it should.
    pub(crate) fn bad_gateway(message: String) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "The sign-in could not be completed", message)
    }

    /// What the provider sent does not verify.
    pub(crate) fn unverified(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "The sign-in could not be verified", message)
    }

    fn stale(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "This sign-in has expired", message.to_owned())
    }

    fn restart(mut self, request: &str) -> Self {
        self.restart = Some(request.to_owned());
        self
    }

    fn respond(self, state: &AppState) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), reason = %self.message, "upstream sign-in failed");
        }
        UpstreamProblem {
            status: self.status,
            title: self.title,
            message: &self.message,
            restart: self.restart.as_deref(),
        }
        .render(state)
        .into_response()
    }
}

impl From<StoreError> for UpstreamError {
    fn from(e: StoreError) -> Self {
        let error = authflow_core::OAuthError::from(e);
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        UpstreamError::new(status, "Temporarily unavailable", error.description().to_owned())
    }
}

impl From<ApiError> for UpstreamError {
    fn from(e: ApiError) -> Self {
        let status = StatusCode::from_u16(e.error().status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        UpstreamError::new(status, "Temporarily unavailable", e.error().description().to_owned())
    }
}

/// Either kind of stop.
enum Stop {
    Upstream(UpstreamError),
    Request(Failure),
}

impl From<UpstreamError> for Stop {
    fn from(e: UpstreamError) -> Self {
        Stop::Upstream(e)
    }
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Request(f)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Upstream(e.into())
    }
}

impl Stop {
    fn respond(self, state: &AppState) -> Response {
        match self {
            Stop::Upstream(e) => e.respond(state),
            Stop::Request(f) => f.respond(state),
        }
    }
}

/// Where providers send the browser back.
fn redirect_uri(state: &AppState) -> String {
    state.endpoint("authorize/upstream/callback")
}

/// `POST {base}/authorize/upstream/{id}`: leave for the provider.
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form, ApiError>,
) -> Response {
    begin(&state, &id, &headers, form).await.unwrap_or_else(|stop| stop.respond(&state))
}

async fn begin(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    form: Result<Form, ApiError>,
) -> Result<Response, Stop> {
    let Form(form) = form.map_err(Failure::from)?;
    let request = posted_request(state, headers, &form).await?;
    let unknown = || {
        UpstreamError::new(
            StatusCode::NOT_FOUND,
            "Unknown sign-in service",
            "This sign-in service is not configured here.".into(),
        )
    };
    let provider = state.upstream.find(id).ok_or_else(unknown)?;
    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let challenge = CodeChallenge::s256(&verifier);
    let pending = Pending {
        state: state::random_value(),
        nonce: state::random_value(),
        verifier: verifier.expose().to_owned(),
        request: request.encoded(),
        started: state.clock.now().as_secs(),
    };
    let (mut url, scope) = match provider {
        UpstreamProvider::Oidc(p) => (oidc::discover(state, p).await?.authorization_endpoint, p.scope()),
        UpstreamProvider::Github(p) => (p.authorization_endpoint()?, p.scope().to_owned()),
    };
    let client_id = match provider {
        UpstreamProvider::Oidc(p) => &p.client_id,
        UpstreamProvider::Github(p) => &p.client_id,
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect_uri(state))
        .append_pair("scope", &scope)
        .append_pair("state", &pending.state)
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256");
    if matches!(provider, UpstreamProvider::Oidc(_)) {
        url.query_pairs_mut().append_pair("nonce", &pending.nonce);
    }
    let cookie = state::seal(state, provider, &pending).ok_or_else(|| {
        UpstreamError::new(
            StatusCode::BAD_REQUEST,
            "This request is too long",
            "The application's sign-in request is too long to be carried through the sign-in service.".into(),
        )
    })?;
    let mut response = see_other(url.as_str());
    state::set(response.headers_mut(), Some(cookie));
    Ok(response)
}

/// `GET {base}/authorize/upstream/callback`: back from the provider.
pub(crate) async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query, ApiError>,
) -> Response {
    let mut response = finish(&state, &headers, query).await.unwrap_or_else(|stop| stop.respond(&state));
    // Whatever happened, this round trip is over.
    state::set(response.headers_mut(), state::clear(&state));
    response
}

async fn finish(state: &AppState, headers: &HeaderMap, query: Result<Query, ApiError>) -> Result<Response, Stop> {
    let Query(params) = query.map_err(Failure::from)?;
    let no_cookie =
        "This sign-in was not started in this browser, or it took too long. Start again from the application.";
    let (id, sealed) = state::read(state, headers).ok_or_else(|| UpstreamError::stale(no_cookie))?;
    let provider = state.upstream.find(id).ok_or_else(|| UpstreamError::stale(no_cookie))?;
    let pending = state::open(provider, sealed).ok_or_else(|| UpstreamError::stale(no_cookie))?;
    let restart = |e: UpstreamError| e.restart(&pending.request);

    // The state proves the answer belongs to this browser's round trip; it is good for one answer only.
    let returned = params.get("state").unwrap_or("");
    if !constant_time_eq(returned.as_bytes(), pending.state.as_bytes()) {
        return Err(restart(UpstreamError::stale(
            "The answer from the sign-in service does not belong to this sign-in (state mismatch). Nothing was done.",
        ))
        .into());
    }
    if pending.expired(state.clock.now()) {
        return Err(restart(UpstreamError::stale("The sign-in took too long.")).into());
    }
    let marker = format!("upstream-state:{}", TokenHash::of(&pending.state).to_hex());
    let expires = authflow_core::UnixTime::from_secs(pending.started) + state::STATE_TTL;
    if !state.remember_once(&marker, expires).await.map_err(UpstreamError::from)? {
        return Err(restart(UpstreamError::stale("This answer from the sign-in service was already used.")).into());
    }
    // RFC 9207: a provider that names itself must name the one this round trip went to (mix-up defence).
    if let (UpstreamProvider::Oidc(p), Some(iss)) = (provider, params.get("iss")) {
        if iss != p.issuer {
            return Err(restart(UpstreamError::unverified(format!(
                "The answer names another issuer than {}.",
                provider.name()
            )))
            .into());
        }
    }
    if let Some(error) = params.get("error") {
        let message = format!(
            "{} did not sign you in ({}).",
            provider.name(),
            if error == "access_denied" { "you cancelled, or it refused" } else { "it reported an error" }
        );
        return Err(restart(UpstreamError::new(StatusCode::FORBIDDEN, "Sign-in cancelled", message)).into());
    }
    let code = params
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| restart(UpstreamError::bad_gateway(format!("{} sent no code.", provider.name()))))?;

    let redirect_uri = redirect_uri(state);
    let identity = match provider {
        UpstreamProvider::Oidc(p) => oidc::finish(state, p, &pending, code, &redirect_uri).await,
        UpstreamProvider::Github(p) => github::finish(state, p, &pending, code, &redirect_uri).await,
    }
    .map_err(restart)?;

    if !provider.allow().admits(&identity) {
        tracing::info!(target: AUDIT, provider = %provider.id(), "upstream sign-in refused by the allow rules");
        return Err(UpstreamError::new(
            StatusCode::FORBIDDEN,
            "Access denied",
            format!(
                "You signed in at {} as {}, but that account is not allowed to use this server. \
                 Ask its administrator for access, or sign in with another account.",
                provider.name(),
                identity.label()
            ),
        )
        .restart(&pending.request)
        .into());
    }
    let user = link(state, &identity).await?;
    if user.disabled {
        return Err(UpstreamError::new(
            StatusCode::FORBIDDEN,
            "Account disabled",
            "This account is disabled. Contact your administrator.".into(),
        )
        .into());
    }
    // The original request, validated again in full: the client may have changed since.
    let params =
        Params::parse(pending.request.as_bytes()).map_err(|e| Failure::from(crate::pages::Problem::from(e)))?;
    let request = validate_request(state, params).await?;
    let cookie = session::start(state, &user).await?;
    tracing::info!(target: AUDIT, user_id = %user.id, provider = %provider.id(), "upstream sign-in succeeded");
    let mut response = see_other(&back_to_start(state, &request));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The local user linked to `identity`, created on first sign-in.
async fn link(state: &AppState, identity: &Identity) -> Result<User, StoreError> {
    if let Some(user) = state.store.find_user_by_username(&identity.link).await? {
        return Ok(user);
    }
    let user = User {
        id: random_id(),
        username: identity.link.clone(),
        password_hash: None,
        created_at: state.clock.now(),
        disabled: false,
    };
    match state.store.insert_user(&user).await {
        Ok(()) => {
            tracing::info!(target: AUDIT, user_id = %user.id, "user linked to an upstream identity");
            Ok(user)
        }
        // The same person signing in twice at once: the other request linked them first.
        Err(StoreError::Conflict(_)) => state
            .store
            .find_user_by_username(&identity.link)
            .await?
            .ok_or(StoreError::Conflict("the linked user vanished")),
        Err(e) => Err(e),
    }
}
