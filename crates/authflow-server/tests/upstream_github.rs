//! Signing in through GitHub, against a local stand-in of GitHub's OAuth and REST endpoints
//! ([`GitHubStandIn`]): allowed by organisation, denied by organisation, and the e-mail domain rule (only
//! verified addresses count). Each ends with an MCP client's code flow at authflow, or with no session.

mod common;
#[path = "upstream/support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_core::ssrf::SsrfPolicy;
use authflow_http::SafeHttpClient;
use authflow_server::upstream::{GithubUpstream, UpstreamProvider};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use common::browser::*;
use common::{Backend, ClientSpec, TestServer};
use serde_json::{json, Value};
use support::{form_action, Agent};

const CLIENT_ID: &str = "Iv1.standin";
const CLIENT_SECRET: &str = "github app secret for the tests";

on_memory_and_sqlite!(allowed_by_org, denied_by_org, email_domain_rule);

/// A GitHub user as the stand-in knows them.
struct Person {
    id: u64,
    login: &'static str,
    emails: &'static [(&'static str, bool)],
    orgs: &'static [&'static str],
}

const PEOPLE: &[Person] = &[
    Person { id: 1001, login: "octocat", emails: &[("octocat@acme.example", true)], orgs: &["acme"] },
    Person { id: 1002, login: "hubot", emails: &[("hubot@example.com", true)], orgs: &["other"] },
    Person { id: 1003, login: "eve", emails: &[("eve@example.com", false), ("eve@evil.example", true)], orgs: &[] },
];

fn person(login: &str) -> &'static Person {
    PEOPLE.iter().find(|p| p.login == login).unwrap()
}

/// A code's login, redirect URI and PKCE challenge.
type Issued = (&'static str, String, String);

/// **A stand-in for GitHub, not GitHub**: an axum app on loopback with the endpoints authflow calls —
/// `GET /login/oauth/authorize` (signs in whoever the test named, at once), `POST /login/oauth/access_token`
/// (checks the client secret, the code, the redirect URI and PKCE), and under `/api` the REST endpoints
/// `GET /user`, `/user/emails`, `/user/orgs` (checking the bearer token and a `User-Agent`, as GitHub does).
#[derive(Clone, Default)]
struct GitHubStandIn {
    base: String,
    /// Who signs in next.
    next: Arc<Mutex<&'static str>>,
    /// code → what it was issued for.
    codes: Arc<Mutex<HashMap<String, Issued>>>,
    /// Scopes asked for, and API paths called.
    log: Arc<Mutex<Vec<String>>>,
}

impl GitHubStandIn {
    async fn start() -> GitHubStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stand_in =
            GitHubStandIn { base: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/api/user", get(user))
            .route("/api/user/emails", get(emails))
            .route("/api/user/orgs", get(orgs))
            .with_state(stand_in.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        stand_in
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn authorize(State(s): State<GitHubStandIn>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    s.log.lock().unwrap().push(format!("scope={}", q["scope"]));
    let code = authflow_server::random_id();
    let login = *s.next.lock().unwrap();
    s.codes.lock().unwrap().insert(code.clone(), (login, q["redirect_uri"].clone(), q["code_challenge"].clone()));
    let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]);
    Redirect::to(back.as_str()).into_response()
}

async fn access_token(State(s): State<GitHubStandIn>, Form(f): Form<HashMap<String, String>>) -> Json<Value> {
    let refused = Json(json!({"error": "bad_verification_code"}));
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return Json(json!({"error": "incorrect_client_credentials"}));
    }
    let Some((login, redirect_uri, challenge)) = f.get("code").and_then(|c| s.codes.lock().unwrap().remove(c)) else {
        return refused;
    };
    let verifier = f.get("code_verifier").and_then(|v| CodeVerifier::parse(v).ok());
    let pkce_ok = verifier.is_some_and(|v| CodeChallenge::s256(&v).as_str() == challenge);
    if !pkce_ok || f.get("redirect_uri") != Some(&redirect_uri) {
        return refused;
    }
    Json(json!({"access_token": format!("gho_{login}"), "token_type": "bearer", "scope": "read:user,user:email"}))
}

/// The person the request's bearer token belongs to (or a 401, as GitHub answers).
fn caller(s: &GitHubStandIn, headers: &HeaderMap, path: &str) -> Result<&'static Person, Box<Response>> {
    assert!(headers.get("user-agent").is_some(), "GitHub refuses requests without a User-Agent");
    s.log.lock().unwrap().push(path.to_owned());
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer gho_"));
    token.and_then(|login| PEOPLE.iter().find(|p| p.login == login)).ok_or_else(|| {
        Box::new((StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))).into_response())
    })
}

async fn user(State(s): State<GitHubStandIn>, headers: HeaderMap) -> Response {
    match caller(&s, &headers, "/user") {
        Ok(p) => Json(json!({"id": p.id, "login": p.login, "name": p.login})).into_response(),
        Err(r) => *r,
    }
}

async fn emails(State(s): State<GitHubStandIn>, headers: HeaderMap) -> Response {
    match caller(&s, &headers, "/user/emails") {
        Ok(p) => {
            let list: Vec<Value> = p
                .emails
                .iter()
                .enumerate()
                .map(|(i, (e, v))| json!({"email": e, "verified": v, "primary": i == 0, "visibility": null}))
                .collect();
            Json(list).into_response()
        }
        Err(r) => *r,
    }
}

async fn orgs(State(s): State<GitHubStandIn>, headers: HeaderMap) -> Response {
    match caller(&s, &headers, "/user/orgs") {
        Ok(p) => Json(p.orgs.iter().map(|o| json!({"login": o, "id": 1})).collect::<Vec<_>>()).into_response(),
        Err(r) => *r,
    }
}

/// The local user name a stand-in user links to: `github:<tag of the API URL>:<id>` (not github.com).
fn link_key(stand_in: &GitHubStandIn, login: &str) -> String {
    let tag = authflow_core::TokenHash::of(&format!("{}/api", stand_in.base)).to_hex();
    format!("github:{}:{}", &tag[..16], person(login).id)
}

/// authflow with GitHub (the stand-in) as its only sign-in, adjusted by `adjust`, and an MCP client.
async fn start(backend: Backend, adjust: impl FnOnce(&mut GithubUpstream)) -> (TestServer, String, GitHubStandIn) {
    let stand_in = GitHubStandIn::start().await;
    let mut config = GithubUpstream::new(CLIENT_ID, CLIENT_SECRET);
    config.web_base = stand_in.base.clone();
    config.api_base = format!("{}/api", stand_in.base);
    adjust(&mut config);
    let http = SafeHttpClient::builder(SsrfPolicy::development()).build().unwrap();
    let server = TestServer::start_with(backend, |b| {
        b.http_client(http).upstream(UpstreamProvider::Github(config)).local_passwords(false)
    })
    .await;
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    (server, client_id, stand_in)
}

/// Sign in at the stand-in as `login`, from the MCP client's authorization URL; returns authflow's answer
/// to the callback.
async fn sign_in(
    agent: &mut Agent,
    server: &TestServer,
    stand_in: &GitHubStandIn,
    authz: &Authz,
    login: &'static str,
) -> common::Reply {
    *stand_in.next.lock().unwrap() = login;
    let page = agent.get(&server.url(&authz.url())).await;
    assert_page(&page, 200, "Continue with GitHub");
    assert!(!page.text.contains("name=\"password\""), "GitHub only");
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains(&format!(" {};", stand_in.base)), "the button may lead to GitHub: {csp}");
    let action = form_action(&page.text, &server.base);
    let form = [("csrf_token", field(&page.text, "csrf_token")), ("request", field(&page.text, "request"))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to_github = agent.post(&action, &form).await;
    assert_eq!(to_github.status, 303, "{}", to_github.text);
    let location = to_github.header("location").unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/login/oauth/authorize?", stand_in.base)), "{location}");
    let back = agent.get(&location).await;
    let callback = back.header("location").unwrap().to_owned();
    assert!(callback.starts_with(&server.url("/authorize/upstream/callback?")), "{callback}");
    agent.get(&callback).await
}

/// Consent at authflow and exchange the code; returns the token's subject.
async fn finish(
    agent: &mut Agent,
    server: &TestServer,
    client_id: &str,
    authz: &Authz,
    back: &common::Reply,
) -> String {
    assert_eq!(back.status, 303, "signed in: {}", back.text);
    let consent = agent.get(back.header("location").unwrap()).await;
    assert_page(&consent, 200, "wants to access your account");
    let form = [
        ("csrf_token", field(&consent.text, "csrf_token")),
        ("request", field(&consent.text, "request")),
        ("decision", "approve".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = agent.post(&server.url("/authorize/consent"), &form).await;
    let code = redirected_to(&answer, REDIRECT)["code"].clone();
    let token = exchange(server, client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_token().clone();
    let introspector = introspector(server).await;
    let info = server
        .post_form(
            "/introspect",
            &[("token", token["access_token"].as_str().unwrap())],
            Some((&introspector.0, &introspector.1)),
        )
        .await;
    info.body["sub"].as_str().unwrap().to_owned()
}

/// Refused: the page says why; no session, no linked user.
async fn assert_refused(agent: &Agent, server: &TestServer, reply: &common::Reply, says: &str) {
    assert_page(reply, 403, says);
    assert!(!agent.has_cookie(&server.base, "authflow-session"), "no session");
    assert!(server.store.list_users().await.unwrap().is_empty(), "nobody was linked");
}

async fn allowed_by_org(backend: Backend) {
    let (server, client_id, stand_in) = start(backend, |c| c.allow.orgs = vec!["ACME".into()]).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let back = sign_in(&mut agent, &server, &stand_in, &authz, "octocat").await;
    let sub = finish(&mut agent, &server, &client_id, &authz, &back).await;
    let user = server.store.find_user(&sub).await.unwrap().expect("the linked user");
    assert_eq!(user.username, link_key(&stand_in, "octocat"), "linked by GitHub's numeric id");
    assert!(user.password_hash.is_none());
    assert_eq!(
        stand_in.log(),
        ["scope=read:user user:email read:org", "/user", "/user/emails", "/user/orgs"],
        "organisations are read when a rule needs them"
    );
    server.stop().await;
}

async fn denied_by_org(backend: Backend) {
    let (server, client_id, stand_in) = start(backend, |c| c.allow.orgs = vec!["acme".into()]).await;
    let authz = Authz::new(&client_id);
    let mut agent = Agent::default();
    let denied = sign_in(&mut agent, &server, &stand_in, &authz, "hubot").await;
    assert_refused(&agent, &server, &denied, "You signed in at GitHub as hubot, but that account is not allowed").await;
    server.stop().await;
}

async fn email_domain_rule(backend: Backend) {
    let (server, client_id, stand_in) = start(backend, |c| c.allow.email_domains = vec!["example.com".into()]).await;
    let authz = Authz::new(&client_id);
    // eve has an example.com address, but not a verified one.
    let mut agent = Agent::default();
    let denied = sign_in(&mut agent, &server, &stand_in, &authz, "eve").await;
    assert_refused(&agent, &server, &denied, "as eve, but that account is not allowed").await;
    assert!(
        !stand_in.log().iter().any(|l| l.contains("org")),
        "no organisation rule, no read:org: {:?}",
        stand_in.log()
    );

    let mut agent = Agent::default();
    let back = sign_in(&mut agent, &server, &stand_in, &authz, "hubot").await;
    let sub = finish(&mut agent, &server, &client_id, &authz, &back).await;
    let user = server.store.find_user(&sub).await.unwrap().unwrap();
    assert_eq!(user.username, link_key(&stand_in, "hubot"));
    server.stop().await;
}
