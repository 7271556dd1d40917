//! The device authorization grant (RFC 8628), for agents and devices without a browser.
//!
//! | route | does |
//! |---|---|
//! | `POST {base}/device_authorization` | a client asks for a device code and a user code (§3.1, §3.2) |
//! | `GET  {base}/device` | the person enters the user code; with `?user_code=`, it is looked up (rate-limited per address) and, signed in, the consent page is shown, else the sign-in page |
//! | `POST {base}/device/login` | sign in, then back to `GET /device?user_code=…` |
//! | `POST {base}/device/consent` | approve or deny; the device's next poll learns the answer |
//!
//! The device polls `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code` ([`poll`]):
//! the core's state machine answers `authorization_pending`, `slow_down` (the interval grows by 5 s for good),
//! `access_denied`, `expired_token`, and issues tokens once. Every poll is written back with a revision check,
//! so two concurrent polls of an approved code never both get tokens.

use std::net::IpAddr;
use std::sync::Arc;

use authflow_core::device::{
    generate_device_code, generate_user_code, DeviceAuthorizationResponse, DeviceError, DeviceGrant, DeviceStatus,
    PollOutcome, UserCode,
};
use authflow_core::{ErrorCode, GrantType, OAuthError, SecretToken};
use authflow_store::{Client, StoreError};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use url::Url;

use crate::authorize::{address_key, authenticate_user, see_other, Verdict};
use crate::client_auth::{self, AuthenticatedClient};
use crate::client_ip::ClientIp;
use crate::error::{no_store, ApiError};
use crate::issue::{self, Holder, TokenRequest};
use crate::observe::AUDIT;
use crate::pages::{ConsentPage, DeviceDonePage, DeviceEntryPage, DeviceNotice, LoginNotice, LoginPage, Problem};
use crate::params::{Form, Params, Query};
use crate::session::{self, SignedIn};
use crate::{rules, AppState, OsEntropy};

pub(crate) fn routes(base: &str) -> Router<Arc<AppState>> {
    Router::new()
        .route(&format!("{base}/device"), get(verification))
        .route(&format!("{base}/device/login"), post(login))
        .route(&format!("{base}/device/consent"), post(consent))
}

/// `POST /device_authorization` (RFC 8628 §3.1–3.2).
pub(crate) async fn authorization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response, ApiError> {
    let client =
        client_auth::authenticate(&state, &headers, &params, client_auth::Endpoint::DeviceAuthorization).await?;
    if !client.client.metadata.grant_types.contains(&GrantType::DeviceCode) {
        return Err(OAuthError::with_description(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        )
        .into());
    }
    let scope = rules::decide_scope(&state, &client.client, params.get("scope"))?;
    let resources = rules::decide_resources(&state, &client.client, params.get("resource"))?;
    let now = state.clock.now();
    let device_code = generate_device_code(now, &mut OsEntropy);
    // A user code is short, so two live ones may collide: draw again (storage refuses duplicates).
    let mut attempts = 0;
    let (user_code, grant) = loop {
        let user_code = generate_user_code(&mut OsEntropy);
        let grant = DeviceGrant::new(
            device_code.hash(),
            &user_code,
            client.id(),
            scope.clone(),
            resources.clone(),
            &state.policy.device,
            now,
        );
        match state.store.insert_device_grant(&grant).await {
            Ok(()) => break (user_code, grant),
            Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let verification_uri =
        Url::parse(&state.endpoint("device")).map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
    let body = DeviceAuthorizationResponse::new(&device_code, &user_code, &verification_uri, &grant, now);
    tracing::info!(client_id = client.id(), "device authorization started");
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// The device's poll at the token endpoint (RFC 8628 §3.4–3.5).
pub(crate) async fn poll(
    state: &AppState,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<issue::TokenResponse, ApiError> {
    let device_code = SecretToken::from_presented(params.require("device_code")?);
    let invalid = || OAuthError::with_description(ErrorCode::InvalidGrant, "unknown device code");
    let mut grant = state.store.find_device_grant(&device_code.hash()).await?.ok_or_else(invalid)?;
    if grant.client_id != client.id() {
        return Err(invalid().into());
    }
    let now = state.clock.now();
    let outcome = grant.poll(now);
    // Every poll is recorded (the interval bookkeeping); a lost race means another poll got there first.
    if !state.store.update_device_grant(&grant).await? {
        return Err(OAuthError::from(DeviceError::SlowDown { interval_secs: grant.interval_secs }).into());
    }
    let PollOutcome::Issue { subject } = outcome?;
    if state.store.find_user(&subject).await?.is_none_or(|u| u.disabled) {
        return Err(OAuthError::from(DeviceError::AccessDenied).into());
    }
    let grant_record = issue::new_grant(state, client.id(), Some(&subject), state.policy.grant_ttl).await?;
    let refresh = issue::refresh_token_if_allowed(
        state,
        &client.client,
        &grant_record,
        grant.scope.clone(),
        grant.resources.clone(),
    );
    let request = TokenRequest { holder: Holder::Grant(&grant_record), scope: grant.scope, resources: grant.resources };
    issue::respond(state, request, refresh).await
}

/// A pending, unexpired device authorization found by what the person typed, and its client.
struct Pending {
    grant: DeviceGrant,
    client: Client,
    user_code: UserCode,
}

/// Look a typed code up, counting the attempt against the address (user codes are short: RFC 8628 §5.1).
async fn look_up(state: &AppState, ip: Option<IpAddr>, typed: &str) -> Result<Result<Pending, DeviceNotice>, Problem> {
    let now = state.clock.now();
    let key = format!("device:{}", ip.map_or_else(|| "unknown".to_owned(), address_key));
    let decision = state
        .rate_limit(&key, &state.policy.user_code_attempts_per_ip)
        .await
        .map_err(|e| Problem::from(e.error().clone()))?;
    if let Some(secs) = decision.retry_after_secs() {
        tracing::warn!("device code entry rate limited");
        return Ok(Err(DeviceNotice::TooManyAttempts(secs)));
    }
    let Ok(user_code) = UserCode::normalise(typed) else { return Ok(Err(DeviceNotice::InvalidCode)) };
    let grant = state.store.find_device_grant_by_user_code(user_code.as_str()).await.map_err(store_problem)?;
    let Some(grant) = grant.filter(|g| g.status == DeviceStatus::Pending && !g.is_expired(now)) else {
        return Ok(Err(DeviceNotice::InvalidCode));
    };
    let client = state.store.find_client(&grant.client_id).await.map_err(store_problem)?;
    match client.filter(|c| !c.disabled && c.expires_at.is_none_or(|e| e > now)) {
        Some(client) => Ok(Ok(Pending { grant, client, user_code })),
        None => Ok(Err(DeviceNotice::InvalidCode)),
    }
}

fn store_problem(e: StoreError) -> Problem {
    OAuthError::from(e).into()
}

fn entry(state: &AppState, typed: &str, notice: DeviceNotice) -> Response {
    DeviceEntryPage { user_code: typed, notice }.render(state).into_response()
}

/// `GET /device[?user_code=…]`.
async fn verification(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    query: Result<Query, ApiError>,
) -> Response {
    let Ok(Query(params)) = query else { return entry(&state, "", DeviceNotice::InvalidCode) };
    let Some(typed) = params.get("user_code") else { return entry(&state, "", DeviceNotice::None) };
    let pending = match pending_or_page(&state, ip, typed).await {
        Ok(pending) => pending,
        Err(page) => return page,
    };
    match session::current(&state, &headers).await {
        Ok(Some(signed_in)) => consent_page(&state, &headers, &pending, &signed_in),
        Ok(None) => login_page(&state, &headers, &pending, "", LoginNotice::None),
        Err(e) => store_problem(e).respond(&state),
    }
}

/// `POST /device/login`.
async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form, ApiError>,
) -> Response {
    let (form, pending) = match posted(&state, ip, &headers, form).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let username = form.get("username");
    match authenticate_user(&state, ip, username, form.get("password")).await {
        Ok(Verdict::SignedIn(user)) => match session::start(&state, &user).await {
            Ok(cookie) => {
                let mut response = see_other(&back_to_verification(&state, &pending.user_code));
                response.headers_mut().append(header::SET_COOKIE, cookie);
                response
            }
            Err(e) => store_problem(e).respond(&state),
        },
        Ok(Verdict::Refused(notice)) => login_page(&state, &headers, &pending, username.unwrap_or(""), notice),
        Err(problem) => problem.respond(&state),
    }
}

/// `POST /device/consent`.
async fn consent(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form, ApiError>,
) -> Response {
    let (form, mut pending) = match posted(&state, ip, &headers, form).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let signed_in = match session::current(&state, &headers).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return see_other(&back_to_verification(&state, &pending.user_code)),
        Err(e) => return store_problem(e).respond(&state),
    };
    let now = state.clock.now();
    let (decided, approved) = match form.get("decision") {
        Some("approve") => (pending.grant.approve(&signed_in.user.id, now), true),
        Some("deny") => (pending.grant.deny(now), false),
        _ => return Problem::bad_request("Choose Approve or Deny.").respond(&state),
    };
    let typed = pending.user_code.display();
    if decided.is_err() {
        return entry(&state, &typed, DeviceNotice::InvalidCode);
    }
    match state.store.update_device_grant(&pending.grant).await {
        Ok(true) => {}
        // Decided elsewhere meanwhile (another tab, or it expired and was purged).
        Ok(false) => return entry(&state, &typed, DeviceNotice::InvalidCode),
        Err(e) => return store_problem(e).respond(&state),
    }
    tracing::info!(target: AUDIT, client_id = %pending.client.client_id, approved, "device authorization decided");
    let name = client_name(&pending.client);
    DeviceDonePage { client_name: name, approved }.render(&state).into_response()
}

/// The pending authorization a typed code names, or the page to show instead.
async fn pending_or_page(state: &AppState, ip: Option<IpAddr>, typed: &str) -> Result<Pending, Response> {
    match look_up(state, ip, typed).await {
        Ok(Ok(pending)) => Ok(pending),
        Ok(Err(notice)) => Err(entry(state, typed, notice)),
        Err(problem) => Err(problem.respond(state)),
    }
}

/// A posted sign-in or consent form: readable, carrying a code, passing the CSRF check, naming a pending
/// authorization — or the page to show instead.
async fn posted(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    form: Result<Form, ApiError>,
) -> Result<(Params, Pending), Response> {
    let Ok(Form(form)) = form else { return Err(Problem::bad_request("The form could not be read.").respond(state)) };
    let Some(typed) = carried_code(&form) else {
        return Err(Problem::bad_request("The form does not carry a device code.").respond(state));
    };
    if !session::csrf_ok(state, headers, form.get("csrf_token")) {
        return Err(Problem::forged_form(None).respond(state));
    }
    let pending = pending_or_page(state, ip, &typed).await?;
    Ok((form, pending))
}

/// The user code a sign-in or consent form carries (as `request=user_code=…`).
fn carried_code(form: &Params) -> Option<String> {
    let carried = Params::parse(form.get("request")?.as_bytes()).ok()?;
    carried.get("user_code").map(str::to_owned)
}

fn carried(user_code: &UserCode) -> String {
    form_urlencoded::Serializer::new(String::new()).append_pair("user_code", &user_code.display()).finish()
}

fn back_to_verification(state: &AppState, user_code: &UserCode) -> String {
    format!("{}?{}", state.endpoint("device"), carried(user_code))
}

fn client_name(client: &Client) -> &str {
    client.metadata.client_name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(&client.client_id)
}

fn login_page(state: &AppState, headers: &HeaderMap, p: &Pending, username: &str, notice: LoginNotice) -> Response {
    let csrf = session::csrf_token(state, headers);
    let page = LoginPage {
        client_name: client_name(&p.client),
        request: &carried(&p.user_code),
        csrf_token: &csrf.value,
        username,
        notice,
        action: "/device/login",
        redirect_uri: None,
    }
    .render(state);
    crate::authorize::with_cookie(page, csrf.set_cookie)
}

fn consent_page(state: &AppState, headers: &HeaderMap, p: &Pending, who: &SignedIn) -> Response {
    let csrf = session::csrf_token(state, headers);
    let code = p.user_code.display();
    let page = ConsentPage {
        client_name: client_name(&p.client),
        client_id: &p.client.client_id,
        origin: p.client.origin,
        username: &who.user.username,
        scopes: p.grant.scope.as_ref().map(|s| s.iter().collect()).unwrap_or_default(),
        resources: &p.grant.resources,
        redirect_uri: None,
        user_code: Some(&code),
        action: "/device/consent",
        request: &carried(&p.user_code),
        csrf_token: &csrf.value,
    }
    .render(state);
    crate::authorize::with_cookie(page, csrf.set_cookie)
}
