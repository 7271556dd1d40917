//! Signing in through an upstream OpenID Connect provider, end to end on loopback.
//!
//! The provider is real: node-oidc-provider (pinned in `tests/upstream/package-lock.json`, installed with
//! `npm ci` on first run; Node.js and npm must be installed — without them these tests fail and say so),
//! with one confidential client and ES256 ID tokens. The tests drive its development login and consent
//! forms over HTTP, then finish an MCP client's code flow at authflow (consent, code, token).
//!
//! What a real provider will not do on request — sign an ID token with another issuer or nonce — a
//! stand-in does ([`StandIn`], an axum app on loopback). It also signs the way Google and Entra ID do, with
//! RS256 (or PS256), using the fixed test key of `rsa_key/mod.rs`.

mod common;
mod rsa_key;
#[path = "upstream/support.rs"]
mod support;

use std::sync::{Arc, Mutex};

use authflow_core::jose::{jws, Algorithm, PrivateKey};
use authflow_core::ssrf::SsrfPolicy;
use authflow_http::SafeHttpClient;
use authflow_server::upstream::{OidcUpstream, UpstreamClientAuth, UpstreamProvider};
use authflow_server::{AuthServerBuilder, Clock, OsEntropy, SystemClock};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::browser::*;
use common::{Backend, ClientSpec, Reply, TestServer};
use serde_json::{json, Value};
use support::{form_action, query, Agent, NodeProvider};

const CLIENT_ID: &str = "authflow-test";
const CLIENT_SECRET: &str = "upstream client secret, long and random enough";

on_memory_and_sqlite!(
    signs_in_through_a_real_provider_and_completes_the_code_flow,
    client_secret_post_without_local_passwords,
    a_bad_state_is_refused,
    a_user_outside_the_allow_list_is_refused,
    a_bad_nonce_is_refused,
    an_id_token_from_another_issuer_is_refused,
    rs256_and_ps256_id_tokens_sign_in,
    an_id_token_in_an_algorithm_the_provider_does_not_list_is_refused,
    a_provider_without_an_accepted_algorithm_cannot_be_used,
);

/// An outbound client that may reach plain-http loopback providers (accepted for a loopback issuer only).
fn local_http() -> SafeHttpClient {
    SafeHttpClient::builder(SsrfPolicy::development()).build().unwrap()
}

/// Which provider a test signs in at.
enum Upstream {
    /// node-oidc-provider, its client authenticating with this method.
    Node(&'static str),
    /// The stand-in, signing as told and listing these `id_token_signing_alg_values_supported` (none: the
    /// member is left out of its discovery document).
    StandIn(Signer, Option<Value>),
}

/// How the stand-in signs its ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// With a fresh P-256 key.
    Es256,
    /// With the RSA test key: `RS256` or `PS256`.
    Rsa(&'static str),
}

/// Keeps the provider alive for the test.
enum Running {
    Node(NodeProvider),
    StandIn(StandIn),
}

impl Running {
    fn issuer(&self) -> String {
        match self {
            Running::Node(n) => n.issuer.clone(),
            Running::StandIn(s) => s.base.clone(),
        }
    }

    fn stand_in(&self) -> &StandIn {
        match self {
            Running::StandIn(s) => s,
            Running::Node(_) => panic!("not the stand-in"),
        }
    }
}

/// authflow with one OpenID Connect provider ("Corp SSO", adjusted by `adjust`) and an MCP client. The clock
/// is set to the real time: the provider signs with the real clock.
async fn start(
    backend: Backend,
    upstream: Upstream,
    adjust: impl FnOnce(OidcUpstream) -> OidcUpstream,
    extra: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
) -> (TestServer, String, Running) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/authorize/upstream/callback", listener.local_addr().unwrap());
    let running = match upstream {
        Upstream::Node(auth) => Running::Node(node(&callback, auth).await),
        Upstream::StandIn(signer, ref advertised) => Running::StandIn(StandIn::start(signer, advertised.clone()).await),
    };
    let mut config = adjust(config(&running.issuer()));
    if let Upstream::Node("client_secret_post") = upstream {
        config.client_auth = UpstreamClientAuth::ClientSecretPost;
    }
    let server = TestServer::start_on(backend, listener, |b| {
        extra(b.http_client(local_http()).upstream(UpstreamProvider::Oidc(config)))
    })
    .await;
    server.clock.set(SystemClock.now());
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    (server, client_id, running)
}

async fn node(callback: &str, auth: &str) -> NodeProvider {
    NodeProvider::start(callback, CLIENT_ID, CLIENT_SECRET, auth).await
}

fn config(issuer: &str) -> OidcUpstream {
    let mut c = OidcUpstream::new("corp", issuer, CLIENT_ID, CLIENT_SECRET);
    c.name = Some("Corp SSO".into());
    c
}

/// From the MCP client's authorization URL through the sign-in page's button to the provider; returns the
/// provider URL the browser was sent to.
async fn leave_for_provider(agent: &mut Agent, server: &TestServer, authz: &Authz, provider_origin: &str) -> String {
    let page = agent.get(&server.url(&authz.url())).await;
    assert_page(&page, 200, "Continue with Corp SSO");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains(&format!("form-action 'self' http://127.0.0.1:33418 {provider_origin};")), "{csp}");
    let action = form_action(&page.text, &server.base);
    assert_eq!(action, server.url("/authorize/upstream/corp"));
    let form = [("csrf_token", field(&page.text, "csrf_token")), ("request", field(&page.text, "request"))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = agent.post(&action, &form).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.starts_with(provider_origin), "{location}");
    assert!(agent.has_cookie(&server.base, "authflow-upstream"), "the round trip's state cookie");
    let q = query(&location);
    assert_eq!(q["redirect_uri"], server.url("/authorize/upstream/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!((q["client_id"].as_str(), q["response_type"].as_str()), (CLIENT_ID, "code"));
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43 && q["code_challenge"].len() == 43, "{q:?}");
    location
}

/// Sign in at node-oidc-provider as `login` and consent; returns authflow's callback URL, not yet visited.
async fn sign_in_upstream(agent: &mut Agent, server: &TestServer, location: &str, login: &str) -> String {
    let callback = server.url("/authorize/upstream/callback");
    let reply = agent.get(location).await;
    let (at, page) = agent.follow(location, reply, &callback).await;
    assert_eq!(page.status, 200, "the provider's sign-in page: {}", page.text);
    assert!(page.text.contains("name=\"login\""), "{}", page.text);
    let action = form_action(&page.text, &at);
    let reply = agent.post(&action, &[("prompt", "login"), ("login", login), ("password", "anything")]).await;
    let (at, page) = agent.follow(&action, reply, &callback).await;
    if at.starts_with(&callback) {
        return at;
    }
    assert!(page.text.contains("value=\"consent\""), "the provider's consent page: {}", page.text);
    let action = form_action(&page.text, &at);
    let reply = agent.post(&action, &[("prompt", "consent")]).await;
    let (at, last) = agent.follow(&action, reply, &callback).await;
    assert!(at.starts_with(&callback), "back to authflow, not {at}: {}", last.text);
    at
}

/// Approve at authflow's consent page and exchange the code; returns the token response.
async fn consent_and_token(
    agent: &mut Agent,
    server: &TestServer,
    client_id: &str,
    authz: &Authz,
    back: &Reply,
) -> Value {
    assert_eq!(back.status, 303, "signed in, back to /authorize: {}", back.text);
    let to = back.header("location").unwrap().to_owned();
    assert!(to.starts_with(&server.url("/authorize?")), "{to}");
    let consent = agent.get(&to).await;
    assert_page(&consent, 200, "wants to access your account");
    let form = [
        ("csrf_token", field(&consent.text, "csrf_token")),
        ("request", field(&consent.text, "request")),
        ("decision", "approve".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = agent.post(&server.url("/authorize/consent"), &form).await;
    let params = redirected_to(&answer, REDIRECT);
    assert_eq!(params["state"], authz.get("state"));
    exchange(server, client_id, &params["code"], REDIRECT, authz.verifier.expose()).await.assert_token().clone()
}

/// The subject of an access token, by introspection.
async fn subject(server: &TestServer, token: &Value) -> String {
    let introspector = introspector(server).await;
    let info = server
        .post_form(
            "/introspect",
            &[("token", token["access_token"].as_str().unwrap())],
            Some((&introspector.0, &introspector.1)),
        )
        .await;
    assert_eq!(info.body["active"], true, "{}", info.text);
    info.body["sub"].as_str().unwrap().to_owned()
}

/// No session and no code: the browser is still signed out at authflow.
async fn assert_signed_out(agent: &mut Agent, server: &TestServer, authz: &Authz, reply: &Reply) {
    let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().map(|c| c.to_str().unwrap()).collect();
    assert!(!cookies.iter().any(|c| c.starts_with("authflow-session=")), "no session: {cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("authflow-upstream=;") && c.contains("Max-Age=0")), "{cookies:?}");
    assert!(!agent.has_cookie(&server.base, "authflow-session"));
    let again = agent.get(&server.url(&authz.url())).await;
    assert_page(&again, 200, "Continue with Corp SSO");
}

async fn signs_in_through_a_real_provider_and_completes_the_code_flow(backend: Backend) {
    let (server, client_id, provider) = start(backend, Upstream::Node("client_secret_basic"), |c| c, |b| b).await;
    let issuer = provider.issuer();
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let location = leave_for_provider(&mut agent, &server, &authz, &issuer).await;
    let callback = sign_in_upstream(&mut agent, &server, &location, "alice").await;
    assert_eq!(query(&callback)["iss"], issuer, "the provider names itself (RFC 9207)");
    let old_state_cookie = agent.cookie(&server.base, "authflow-upstream").unwrap();
    let back = agent.get(&callback).await;
    assert!(agent.has_cookie(&server.base, "authflow-session"), "signed in at authflow");
    assert!(!agent.has_cookie(&server.base, "authflow-upstream"), "the state cookie is cleared");
    let token = consent_and_token(&mut agent, &server, &client_id, &authz, &back).await;

    // The token's subject is the local user linked to (issuer, sub); it has no password.
    let sub = subject(&server, &token).await;
    let user = server.store.find_user(&sub).await.unwrap().expect("the linked user");
    assert!(user.username.starts_with("oidc:") && user.username.ends_with(":alice"), "{}", user.username);
    assert!(user.password_hash.is_none());

    // The state is good for one answer: the same callback with the old cookie put back is refused.
    agent.set_cookie(&server.base, "authflow-upstream", &old_state_cookie);
    let replay = agent.get(&callback).await;
    assert_page(&replay, 400, "already used");

    // Another browser, another round trip, the same person: the same local user.
    let mut other = Agent::default();
    let authz = Authz::new(&client_id).set("scope", "notes:write");
    let location = leave_for_provider(&mut other, &server, &authz, &issuer).await;
    let callback = sign_in_upstream(&mut other, &server, &location, "alice").await;
    let back = other.get(&callback).await;
    let token = consent_and_token(&mut other, &server, &client_id, &authz, &back).await;
    assert_eq!(subject(&server, &token).await, sub, "a stable local subject");
    server.stop().await;
}

async fn client_secret_post_without_local_passwords(backend: Backend) {
    let (server, client_id, provider) =
        start(backend, Upstream::Node("client_secret_post"), |c| c, |b| b.local_passwords(false)).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let page = agent.get(&server.url(&authz.url())).await;
    assert_page(&page, 200, "Continue with Corp SSO");
    assert!(!page.text.contains("name=\"password\""), "no password form");
    let refused = agent
        .post(
            &server.url("/authorize/login"),
            &[
                ("csrf_token", &field(&page.text, "csrf_token")),
                ("request", &field(&page.text, "request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_page(&refused, 400, "turned off");
    assert!(!agent.has_cookie(&server.base, "authflow-session"));

    let location = leave_for_provider(&mut agent, &server, &authz, &provider.issuer()).await;
    let callback = sign_in_upstream(&mut agent, &server, &location, "alice").await;
    let back = agent.get(&callback).await;
    consent_and_token(&mut agent, &server, &client_id, &authz, &back).await;
    server.stop().await;
}

async fn a_bad_state_is_refused(backend: Backend) {
    let (server, client_id, provider) = start(backend, Upstream::Node("client_secret_basic"), |c| c, |b| b).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let location = leave_for_provider(&mut agent, &server, &authz, &provider.issuer()).await;
    let callback = sign_in_upstream(&mut agent, &server, &location, "alice").await;

    // Another browser (no state cookie) cannot use the answer.
    let mut stranger = Agent::default();
    let foreign = stranger.get(&callback).await;
    assert_page(&foreign, 400, "was not started in this browser");
    assert!(!stranger.has_cookie(&server.base, "authflow-session"));

    // A changed state is refused, and ends the round trip.
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { format!("{v}x") } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let tampered = agent.get(url.as_str()).await;
    assert_page(&tampered, 400, "state mismatch");
    assert!(tampered.text.contains("Start again"), "{}", tampered.text);
    assert_signed_out(&mut agent, &server, &authz, &tampered).await;
    // The state cookie is gone, so the genuine answer no longer works in this browser either.
    assert_page(&agent.get(&callback).await, 400, "was not started in this browser");
    assert!(server.store.list_users().await.unwrap().is_empty(), "nobody was linked");
    server.stop().await;
}

async fn a_user_outside_the_allow_list_is_refused(backend: Backend) {
    let only_example = |mut c: OidcUpstream| {
        c.allow.email_domains = vec!["example.com".into()];
        c
    };
    let (server, client_id, provider) =
        start(backend, Upstream::Node("client_secret_basic"), only_example, |b| b).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let location = leave_for_provider(&mut agent, &server, &authz, &provider.issuer()).await;
    let callback = sign_in_upstream(&mut agent, &server, &location, "mallory").await;
    let denied = agent.get(&callback).await;
    assert_page(&denied, 403, "mallory@evil.example, but that account is not allowed to use this server");
    assert_signed_out(&mut agent, &server, &authz, &denied).await;
    assert!(server.store.list_users().await.unwrap().is_empty(), "nobody was linked");

    // alice@example.com is allowed (in a fresh browser: the provider remembers mallory in this one).
    let mut agent = Agent::default();
    let location = leave_for_provider(&mut agent, &server, &authz, &provider.issuer()).await;
    let callback = sign_in_upstream(&mut agent, &server, &location, "alice").await;
    let back = agent.get(&callback).await;
    consent_and_token(&mut agent, &server, &client_id, &authz, &back).await;
    server.stop().await;
}

async fn a_bad_nonce_is_refused(backend: Backend) {
    tampered_id_token(backend, Tamper::Nonce, "nonce mismatch").await;
}

async fn an_id_token_from_another_issuer_is_refused(backend: Backend) {
    tampered_id_token(backend, Tamper::Issuer, "issued by another issuer").await;
}

/// The stand-in signs a token with one thing wrong: refused, with no session. Then the same stand-in,
/// with nothing wrong, signs the person in (so the refusal was for that one thing).
async fn tampered_id_token(backend: Backend, tamper: Tamper, says: &str) {
    let (server, client_id, provider) = start(backend, Upstream::StandIn(Signer::Es256, None), |c| c, |b| b).await;
    let stand_in = provider.stand_in();
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();

    *stand_in.tamper.lock().unwrap() = tamper;
    let location = leave_for_provider(&mut agent, &server, &authz, &stand_in.base).await;
    let reply = agent.get(&stand_in.answer(&location)).await;
    assert_page(&reply, 403, says);
    assert_signed_out(&mut agent, &server, &authz, &reply).await;
    assert!(server.store.list_users().await.unwrap().is_empty(), "nobody was linked");

    *stand_in.tamper.lock().unwrap() = Tamper::Nothing;
    let location = leave_for_provider(&mut agent, &server, &authz, &stand_in.base).await;
    let back = agent.get(&stand_in.answer(&location)).await;
    consent_and_token(&mut agent, &server, &client_id, &authz, &back).await;
    server.stop().await;
}

/// Google, Entra ID, Okta, Auth0 and Keycloak sign ID tokens with RS256: a sign-in with one works, with the
/// provider's key found in its JWKS beside keys of other types. PS256 works too.
async fn rs256_and_ps256_id_tokens_sign_in(backend: Backend) {
    let advertised = json!(["RS256", "PS256", "HS256"]);
    let (server, client_id, provider) =
        start(backend, Upstream::StandIn(Signer::Rsa("RS256"), Some(advertised)), |c| c, |b| b).await;
    let stand_in = provider.stand_in();
    let mut linked = None;
    // Another scope the second time, so consent is asked again.
    for (alg, scope) in [("RS256", "notes:read"), ("PS256", "notes:write")] {
        *stand_in.signer.lock().unwrap() = Signer::Rsa(alg);
        let authz = Authz::new(&client_id).set("scope", scope);
        let mut agent = Agent::default();
        let location = leave_for_provider(&mut agent, &server, &authz, &stand_in.base).await;
        let back = agent.get(&stand_in.answer(&location)).await;
        assert!(agent.has_cookie(&server.base, "authflow-session"), "signed in with {alg}: {}", back.text);
        let token = consent_and_token(&mut agent, &server, &client_id, &authz, &back).await;
        let sub = subject(&server, &token).await;
        assert_eq!(*linked.get_or_insert_with(|| sub.clone()), sub, "the same person either way");
    }
    let user = server.store.find_user(linked.as_ref().unwrap()).await.unwrap().expect("the linked user");
    assert!(user.username.ends_with(":stand-in-user"), "{}", user.username);
    server.stop().await;
}

/// The provider says it signs ID tokens with ES256 only: an RS256 one is refused, however well signed.
async fn an_id_token_in_an_algorithm_the_provider_does_not_list_is_refused(backend: Backend) {
    let upstream = Upstream::StandIn(Signer::Rsa("RS256"), Some(json!(["ES256"])));
    let (server, client_id, provider) = start(backend, upstream, |c| c, |b| b).await;
    let stand_in = provider.stand_in();
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let location = leave_for_provider(&mut agent, &server, &authz, &stand_in.base).await;
    let reply = agent.get(&stand_in.answer(&location)).await;
    assert_page(&reply, 403, "it is not signed with an accepted algorithm (ES256)");
    assert_signed_out(&mut agent, &server, &authz, &reply).await;
    assert!(server.store.list_users().await.unwrap().is_empty(), "nobody was linked");
    server.stop().await;
}

/// A provider that signs ID tokens only with algorithms authflow does not verify is refused before the
/// browser is sent there, with the reason.
async fn a_provider_without_an_accepted_algorithm_cannot_be_used(backend: Backend) {
    let upstream = Upstream::StandIn(Signer::Es256, Some(json!(["HS256", "RS512"])));
    let (server, client_id, provider) = start(backend, upstream, |c| c, |b| b).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let page = agent.get(&server.url(&authz.url())).await;
    assert_page(&page, 200, "Continue with Corp SSO");
    let form = [("csrf_token", field(&page.text, "csrf_token")), ("request", field(&page.text, "request"))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = agent.post(&server.url("/authorize/upstream/corp"), &form).await;
    assert_page(
        &reply,
        503,
        "it signs ID tokens with HS256, RS512 only, and authflow accepts RS256, PS256, ES256, EdDSA",
    );
    assert!(!agent.has_cookie(&server.base, "authflow-upstream"), "no round trip was started");
    let _ = provider;
    server.stop().await;
}

// ---- a stand-in provider ---------------------------------------------------------------------------------

/// What the stand-in gets wrong in its next ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    Nonce,
    Issuer,
}

/// **A stand-in, not a real provider**: an axum app on loopback that serves OpenID Connect discovery, a
/// JWKS and a token endpoint, and signs ID tokens (ES256 with a fresh key, or RS256/PS256 with the RSA test
/// key) for the `nonce` of the last authorization request it was shown — with one thing wrong when told to.
/// Its JWKS holds both keys, and a key of a type authflow does not use, as real sets often do.
struct StandIn {
    base: String,
    tamper: Arc<Mutex<Tamper>>,
    signer: Arc<Mutex<Signer>>,
    nonce: Arc<Mutex<String>>,
}

#[derive(Clone)]
struct StandInState {
    base: String,
    key: Arc<PrivateKey>,
    advertised: Option<Value>,
    tamper: Arc<Mutex<Tamper>>,
    signer: Arc<Mutex<Signer>>,
    nonce: Arc<Mutex<String>>,
}

impl StandIn {
    async fn start(signer: Signer, advertised: Option<Value>) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = StandInState {
            base: base.clone(),
            key: Arc::new(PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, None)),
            advertised,
            tamper: Arc::new(Mutex::new(Tamper::Nothing)),
            signer: Arc::new(Mutex::new(signer)),
            nonce: Arc::new(Mutex::new(String::new())),
        };
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<StandInState>| async move {
                    let mut doc = json!({
                        "issuer": s.base,
                        "authorization_endpoint": format!("{}/auth", s.base),
                        "token_endpoint": format!("{}/token", s.base),
                        "jwks_uri": format!("{}/jwks", s.base),
                    });
                    if let Some(advertised) = s.advertised {
                        doc["id_token_signing_alg_values_supported"] = advertised;
                    }
                    Json(doc)
                }),
            )
            .route(
                "/jwks",
                get(|State(s): State<StandInState>| async move {
                    let other = json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"});
                    Json(json!({"keys": [other, s.key.public_jwk(), rsa_key::public_jwk(json!({"use": "sig"}))]}))
                }),
            )
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        StandIn { base, tamper: state.tamper, signer: state.signer, nonce: state.nonce }
    }

    /// "Sign the person in": remember the request's nonce and return authflow's callback URL with a code.
    fn answer(&self, authorization_url: &str) -> String {
        let q = query(authorization_url);
        *self.nonce.lock().unwrap() = q["nonce"].clone();
        let mut callback = url::Url::parse(&q["redirect_uri"]).unwrap();
        callback.query_pairs_mut().append_pair("code", "stand-in-code").append_pair("state", &q["state"]);
        callback.to_string()
    }
}

async fn token(State(s): State<StandInState>, headers: axum::http::HeaderMap) -> Json<Value> {
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{CLIENT_ID}:{}", form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect::<String>())
        )
    );
    assert_eq!(headers.get("authorization").unwrap().to_str().unwrap(), expected, "client_secret_basic");
    let tamper = *s.tamper.lock().unwrap();
    let now = SystemClock.now().as_secs();
    let claims = json!({
        "iss": if tamper == Tamper::Issuer { "https://elsewhere.example".to_owned() } else { s.base.clone() },
        "sub": "stand-in-user",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": if tamper == Tamper::Nonce { "another-nonce".to_owned() } else { s.nonce.lock().unwrap().clone() },
        "email": "someone@example.com",
        "email_verified": true,
    });
    let signer = *s.signer.lock().unwrap();
    let id_token = match signer {
        Signer::Es256 => jws::sign(Some("JWT"), &claims, &s.key).unwrap(),
        Signer::Rsa(alg) => rsa_key::sign(alg, json!({"typ": "JWT"}), &claims),
    };
    Json(json!({"access_token": "stand-in-access", "token_type": "Bearer", "id_token": id_token}))
}
