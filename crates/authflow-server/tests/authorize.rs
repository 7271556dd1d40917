//! The authorization endpoint over real HTTP, driven the way a browser drives it: GET the authorization URL,
//! read the sign-in form, post it back with the CSRF token and cookies, approve the consent page, follow the
//! redirect to the client, exchange the code at `/token`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use authflow_core::password::{hash_password_with, PasswordPolicy};
use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_server::{OsEntropy, Policy};
use authflow_store::User;
use common::{Backend, ClientSpec, Reply, TestServer};
use url::Url;

const PASSWORD: &str = "correct horse battery staple";
const RESOURCE: &str = "https://mcp.example/mcp";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";

// ---- a tiny browser --------------------------------------------------------------------------------------

/// A cookie jar over the harness's HTTP client (which never follows redirects).
struct Browser<'a> {
    server: &'a TestServer,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(server: &'a TestServer) -> Self {
        Browser { server, cookies: BTreeMap::new() }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            self.server.url(url)
        } else {
            url.to_owned()
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn remember(&mut self, reply: &Reply) {
        for line in reply.headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> Reply {
        let req = self.server.http.get(self.absolute(url)).header("cookie", self.cookie_header());
        let reply = Reply::from(req.send().await.unwrap()).await;
        self.remember(&reply);
        reply
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let req = self.server.http.post(self.absolute(path)).header("cookie", self.cookie_header()).form(form);
        let reply = Reply::from(req.send().await.unwrap()).await;
        self.remember(&reply);
        reply
    }
}

/// The value of the input named `name` in a page (our pages write `name="…" value="…"`).
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name} in:\n{html}")) + marker.len();
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    raw.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[track_caller]
fn assert_page(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "unexpected status; body:\n{}", reply.text);
    assert!(reply.header("content-type").unwrap().starts_with("text/html"), "an HTML page");
    assert!(reply.header("location").is_none(), "a page, not a redirect");
    assert!(reply.text.contains(needle), "the page should say {needle:?}:\n{}", reply.text);
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    let csp = reply.header("content-security-policy").expect("a CSP");
    for part in ["default-src 'none'", "style-src 'sha256-", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part:?}");
    }
    assert!(!csp.contains("script-src") && !csp.contains("unsafe"), "no script, nothing unsafe: {csp}");
}

/// The query parameters of a redirect to the client.
#[track_caller]
fn redirected_to(reply: &Reply, redirect_uri: &str) -> BTreeMap<String, String> {
    assert_eq!(reply.status, 303, "expected a redirect to the client; body:\n{}", reply.text);
    let location = reply.header("location").expect("a Location header");
    assert!(location.starts_with(redirect_uri), "{location} should start with {redirect_uri}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

// ---- a client's side of the flow -------------------------------------------------------------------------

/// An authorization request under construction, with its PKCE verifier.
struct Authz {
    params: BTreeMap<String, String>,
    verifier: CodeVerifier,
}

impl Authz {
    fn new(client_id: &str) -> Self {
        let verifier = CodeVerifier::generate(&mut OsEntropy);
        let mut params = BTreeMap::new();
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CodeChallenge::s256(&verifier).as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "notes:read"),
            ("resource", RESOURCE),
            ("state", "st-ü &=?"),
        ] {
            params.insert(k.to_owned(), v.to_owned());
        }
        Authz { params, verifier }
    }

    fn set(mut self, k: &str, v: &str) -> Self {
        self.params.insert(k.to_owned(), v.to_owned());
        self
    }

    fn without(mut self, k: &str) -> Self {
        self.params.remove(k);
        self
    }

    fn get(&self, k: &str) -> &str {
        &self.params[k]
    }

    fn url(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish();
        format!("/authorize?{query}")
    }
}

async fn add_user(server: &TestServer, username: &str, disabled: bool) -> String {
    let hash = hash_password_with(PASSWORD, &PasswordPolicy::insecure_fast_for_tests(), &mut OsEntropy).unwrap();
    let id = format!("user-{username}");
    let user = User {
        id: id.clone(),
        username: username.to_owned(),
        password_hash: Some(hash),
        created_at: server.clock_now(),
        disabled,
    };
    server.store.insert_user(&user).await.unwrap();
    id
}

/// A server with the user `alice` and a public MCP-style client.
async fn setup(backend: Backend) -> (TestServer, String) {
    setup_with(backend, |b| b).await
}

async fn setup_with(
    backend: Backend,
    configure: impl FnOnce(authflow_server::AuthServerBuilder) -> authflow_server::AuthServerBuilder,
) -> (TestServer, String) {
    let server = TestServer::start_with(backend, configure).await;
    add_user(&server, "alice", false).await;
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    (server, client_id)
}

/// GET the authorization URL, expect the sign-in page, and post the credentials.
async fn sign_in(browser: &mut Browser<'_>, authz: &Authz, username: &str, password: &str) -> Reply {
    let page = browser.get(&authz.url()).await;
    assert_page(&page, 200, "Sign in");
    browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &field(&page.text, "csrf_token")),
                ("request", &field(&page.text, "request")),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

/// Sign in as alice and follow the redirect back to the authorization endpoint.
async fn signed_in(browser: &mut Browser<'_>, authz: &Authz) -> Reply {
    let reply = sign_in(browser, authz, "alice", PASSWORD).await;
    assert_eq!(reply.status, 303, "signing in redirects; body:\n{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.starts_with(&browser.server.url("/authorize?")), "back to the authorization endpoint");
    browser.get(&location).await
}

async fn decide(browser: &mut Browser<'_>, consent_page: &Reply, decision: &str) -> Reply {
    assert_page(consent_page, 200, "wants to access your account");
    let form = [
        ("csrf_token", field(&consent_page.text, "csrf_token")),
        ("request", field(&consent_page.text, "request")),
        ("decision", decision.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post("/authorize/consent", &form).await
}

/// The whole browser side: sign in, approve; returns the code.
async fn code_for(server: &TestServer, authz: &Authz) -> String {
    let mut browser = Browser::new(server);
    let consent = signed_in(&mut browser, authz).await;
    let answer = decide(&mut browser, &consent, "approve").await;
    redirected_to(&answer, authz.get("redirect_uri"))["code"].clone()
}

async fn exchange(server: &TestServer, client_id: &str, code: &str, redirect_uri: &str, verifier: &str) -> Reply {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    server.post_form("/token", &form, None).await
}

/// A resource server allowed to introspect tokens for [`RESOURCE`].
async fn introspector(server: &TestServer) -> (String, String) {
    let (id, secret) = server.add_client(ClientSpec::service().resources(&[RESOURCE])).await;
    (id, secret.unwrap())
}

async fn active(server: &TestServer, introspector: &(String, String), token: &str) -> bool {
    let reply = server.post_form("/introspect", &[("token", token)], Some((&introspector.0, &introspector.1))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["active"].as_bool().unwrap()
}

// ---- flows on every backend ------------------------------------------------------------------------------

on_every_backend!(
    full_code_flow,
    remembered_consent_skips_the_consent_page,
    deny_gives_access_denied,
    code_replay_revokes_the_first_tokens,
    expired_code_fails,
    redirect_uri_mismatch_at_token_fails,
    wrong_code_verifier_fails,
);

async fn full_code_flow(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id).set("scope", "notes:read notes:write").set("nonce", "n-123");
    let mut browser = Browser::new(&server);

    let login = browser.get(&authz.url()).await;
    assert_page(&login, 200, "to continue to <strong>Test MCP Client</strong>");
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:33418"), "the form may end at the client: {csp}");
    let csrf_cookie = login.header("set-cookie").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");

    let signed = sign_in(&mut browser, &authz, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let session_cookie = signed.header("set-cookie").expect("a session cookie");
    assert!(session_cookie.starts_with("authflow-session="), "{session_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(session_cookie.contains(attribute), "{session_cookie} lacks {attribute}");
    }
    assert!(!session_cookie.contains("Secure"), "plain http issuer: no Secure flag");

    let consent = browser.get(signed.header("location").unwrap()).await;
    assert_page(&consent, 200, "<strong>Test MCP Client</strong> wants to access your account");
    for shown in
        ["Signed in as <strong>alice</strong>", "<code>notes:read</code>", "<code>notes:write</code>", RESOURCE]
    {
        assert!(consent.text.contains(shown), "consent page shows {shown:?}");
    }

    let answer = decide(&mut browser, &consent, "approve").await;
    let params = redirected_to(&answer, REDIRECT);
    assert!(params["code"].starts_with("af_ac_"), "{params:?}");
    assert_eq!(params["state"], "st-ü &=?", "state echoed exactly");
    assert_eq!(params["iss"], server.base, "RFC 9207 iss");
    assert_eq!(params.len(), 3, "code, state, iss and nothing else: {params:?}");

    let tokens = exchange(&server, &client_id, &params["code"], REDIRECT, authz.verifier.expose()).await;
    let body = tokens.assert_token().clone();
    assert_eq!(body["scope"], "notes:read notes:write");
    let refresh = body["refresh_token"].as_str().expect("a refresh token");

    let introspector = introspector(&server).await;
    let info = server
        .post_form(
            "/introspect",
            &[("token", body["access_token"].as_str().unwrap())],
            Some((&introspector.0, &introspector.1)),
        )
        .await;
    assert_eq!(info.body["active"], true, "{}", info.text);
    assert_eq!(info.body["sub"], "user-alice");
    assert_eq!(info.body["client_id"], client_id.as_str());
    assert_eq!(info.body["aud"], RESOURCE);

    let refreshed = server
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", refresh)],
            None,
        )
        .await;
    refreshed.assert_token();
    assert_ne!(refreshed.body["refresh_token"], refresh, "refresh tokens rotate");
    server.stop().await;
}

async fn remembered_consent_skips_the_consent_page(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let mut browser = Browser::new(&server);
    let first = Authz::new(&client_id).set("scope", "notes:read notes:write");
    let consent = signed_in(&mut browser, &first).await;
    redirected_to(&decide(&mut browser, &consent, "approve").await, REDIRECT);

    // Same browser, same or less asked: straight back with a code.
    let again = Authz::new(&client_id).set("scope", "notes:read").set("state", "second");
    let answer = browser.get(&again.url()).await;
    let params = redirected_to(&answer, REDIRECT);
    assert_eq!(params["state"], "second");
    exchange(&server, &client_id, &params["code"], REDIRECT, again.verifier.expose()).await.assert_token();

    // Another audience was never approved: ask again.
    let elsewhere = Authz::new(&client_id).set("resource", "https://other.example/mcp");
    assert_page(&browser.get(&elsewhere.url()).await, 200, "wants to access your account");
    // No resource (an unrestricted token) was never approved either.
    assert_page(&browser.get(&Authz::new(&client_id).without("resource").url()).await, 200, "wants to access");

    // Another browser has no session: it signs in first.
    let mut other = Browser::new(&server);
    assert_page(&other.get(&again.url()).await, 200, "Sign in");
    server.stop().await;
}

async fn deny_gives_access_denied(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let mut browser = Browser::new(&server);
    let authz = Authz::new(&client_id);
    let consent = signed_in(&mut browser, &authz).await;
    let params = redirected_to(&decide(&mut browser, &consent, "deny").await, REDIRECT);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], authz.get("state"));
    assert_eq!(params["iss"], server.base);
    assert!(!params.contains_key("code"));
    // Nothing was remembered: the next request asks again.
    assert_page(&browser.get(&authz.url()).await, 200, "wants to access your account");
    server.stop().await;
}

async fn code_replay_revokes_the_first_tokens(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let first = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await;
    let first = first.assert_token().clone();
    let introspector = introspector(&server).await;
    let access = first["access_token"].as_str().unwrap();
    assert!(active(&server, &introspector, access).await, "the first tokens work");

    let replay = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await;
    replay.assert_error(400, "invalid_grant");
    assert!(!active(&server, &introspector, access).await, "a replayed code revokes the tokens issued from it");
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(!active(&server, &introspector, refresh).await, "…the refresh token too");
    let refreshed = server
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", refresh)],
            None,
        )
        .await;
    refreshed.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn expired_code_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    server.advance(Duration::from_secs(61));
    exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn redirect_uri_mismatch_at_token_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let other = "http://127.0.0.1:40000/callback";
    exchange(&server, &client_id, &code, other, authz.verifier.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn wrong_code_verifier_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let wrong = CodeVerifier::generate(&mut OsEntropy);
    exchange(&server, &client_id, &code, REDIRECT, wrong.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

// ---- request validation (backend-independent: memory) -----------------------------------------------------

async fn memory() -> (TestServer, String) {
    setup(Backend::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_client_or_redirect_uri_is_shown_never_redirected() {
    let (server, client_id) = memory().await;
    let mut disabled = ClientSpec::public_app();
    disabled.id = Some("disabled-app".into());
    server.add_client(disabled).await;
    let mut c = server.store.find_client("disabled-app").await.unwrap().unwrap();
    c.disabled = true;
    server.store.update_client(&c).await.unwrap();

    let good = Authz::new(&client_id);
    let cases: Vec<(&str, String, &str)> = vec![
        ("no client_id", good.url().replace(&format!("client_id={client_id}&"), ""), "no client_id"),
        ("unknown client", Authz::new("nobody").url(), "not registered"),
        ("malformed client id", Authz::new("bad id").url(), "not registered"),
        ("disabled client", Authz::new("disabled-app").url(), "disabled"),
        ("no redirect_uri", Authz::new(&client_id).without("redirect_uri").url(), "no redirect_uri"),
        (
            "unregistered redirect_uri",
            Authz::new(&client_id).set("redirect_uri", "https://evil.example/callback").url(),
            "not registered for this application",
        ),
        (
            "a different path on the loopback host",
            Authz::new(&client_id).set("redirect_uri", "http://127.0.0.1:33418/callback/evil").url(),
            "not registered for this application",
        ),
        ("a repeated parameter", format!("{}&client_id={client_id}", good.url()), "repeated"),
        ("a repeated redirect_uri", format!("{}&redirect_uri=https%3A%2F%2Fevil.example%2F", good.url()), "repeated"),
    ];
    let mut browser = Browser::new(&server);
    for (what, url, says) in cases {
        let reply = browser.get(&url).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert!(reply.header("location").is_none(), "{what}: never redirected");
        assert_page(&reply, 400, says);
        assert!(!reply.text.contains("evil.example"), "{what}: the page does not link to the bad URI");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_errors_are_redirected_with_state_and_iss() {
    let server = TestServer::start_with(Backend::Memory, |b| {
        b.policy(Policy { resources: vec![RESOURCE.into(), "https://other.example/mcp".into()], ..Policy::default() })
    })
    .await;
    add_user(&server, "alice", false).await;
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    let mut no_code_grant = ClientSpec::public_app().grants(&[authflow_core::GrantType::RefreshToken]);
    no_code_grant.id = Some("refresh-only".into());
    server.add_client(no_code_grant).await;
    let mut narrow = ClientSpec::public_app().resources(&[RESOURCE]);
    narrow.id = Some("narrow".into());
    server.add_client(narrow).await;

    let base = || Authz::new(&client_id);
    let cases: Vec<(&str, Authz, &str)> = vec![
        ("no response_type", base().without("response_type"), "invalid_request"),
        ("implicit", base().set("response_type", "token"), "unsupported_response_type"),
        ("hybrid", base().set("response_type", "code id_token"), "unsupported_response_type"),
        ("form_post", base().set("response_mode", "form_post"), "invalid_request"),
        ("no challenge", base().without("code_challenge"), "invalid_request"),
        ("plain PKCE", base().set("code_challenge_method", "plain"), "invalid_request"),
        ("no method means plain", base().without("code_challenge_method"), "invalid_request"),
        ("lower-case method", base().set("code_challenge_method", "s256"), "invalid_request"),
        ("short challenge", base().set("code_challenge", "abc"), "invalid_request"),
        ("no code grant", Authz::new("refresh-only"), "unauthorized_client"),
        ("scope beyond the client's", base().set("scope", "notes:read admin"), "invalid_scope"),
        ("malformed scope", base().set("scope", "a\"b"), "invalid_scope"),
        ("resource the server does not serve", base().set("resource", "https://else.example/mcp"), "invalid_target"),
        ("resource with a fragment", base().set("resource", "https://mcp.example/mcp#x"), "invalid_target"),
        (
            "resource the client may not use",
            Authz::new("narrow").set("resource", "https://other.example/mcp"),
            "invalid_target",
        ),
    ];
    let mut browser = Browser::new(&server);
    for (what, authz, code) in cases {
        let reply = browser.get(&authz.url()).await;
        let params = redirected_to(&reply, REDIRECT);
        assert_eq!(params["error"], code, "{what}: {params:?}");
        assert!(params.contains_key("error_description"), "{what}");
        assert_eq!(params["state"], authz.get("state"), "{what}: state echoed");
        assert_eq!(params["iss"], server.base, "{what}: iss");
        assert!(!params.contains_key("code"), "{what}");
    }
    // Without a state there is none to echo.
    let params = redirected_to(&browser.get(&base().without("state").without("response_type").url()).await, REDIRECT);
    assert!(!params.contains_key("state"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirect_uris_match_any_port_and_keep_their_query() {
    let server = TestServer::start(Backend::Memory).await;
    add_user(&server, "alice", false).await;
    let mut spec = ClientSpec::public_app();
    spec.redirect_uris = vec!["http://127.0.0.1/callback?tenant=a%20b".into()];
    let (client_id, _) = server.add_client(spec).await;
    let sent = "http://127.0.0.1:50123/callback?tenant=a%20b";
    let authz = Authz::new(&client_id).set("redirect_uri", sent);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    let answer = decide(&mut browser, &consent, "approve").await;
    let location = answer.header("location").unwrap();
    assert!(location.starts_with(&format!("{sent}&code=af_ac_")), "appended to the existing query: {location}");
    let code = redirected_to(&answer, sent)["code"].clone();
    // The token request must repeat the URI exactly as sent, port included.
    exchange(&server, &client_id, &code, sent, authz.verifier.expose()).await.assert_token();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_show_the_form_again() {
    let (server, client_id) = memory().await;
    add_user(&server, "mallory", true).await;
    let authz = Authz::new(&client_id);
    let cases = [
        ("wrong password", "alice", "not the password", 401, "Incorrect username or password."),
        ("unknown user", "nobody", PASSWORD, 401, "Incorrect username or password."),
        ("no password", "alice", "", 400, "Enter your username and password."),
        ("disabled user", "mallory", PASSWORD, 403, "This account is disabled."),
    ];
    for (what, user, password, status, says) in cases {
        let mut browser = Browser::new(&server);
        let reply = sign_in(&mut browser, &authz, user, password).await;
        assert_page(&reply, status, says);
        assert!(!browser.cookies.keys().any(|k| k.contains("session")), "{what}: no session");
        assert!(!reply.text.contains(PASSWORD), "{what}: the password is never echoed");
        if user != "nobody" {
            assert!(reply.text.contains(&format!("value=\"{user}\"")), "{what}: the username is kept");
        }
        // Still signed out.
        assert_page(&browser.get(&authz.url()).await, 200, "Sign in");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_the_csrf_token_are_refused() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    let token = field(&page.text, "csrf_token");
    let request = field(&page.text, "request");
    let other = "A".repeat(43);

    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", vec![("request", &request), ("username", "alice"), ("password", PASSWORD)]),
        (
            "another token",
            vec![("csrf_token", &other), ("request", &request), ("username", "alice"), ("password", PASSWORD)],
        ),
    ];
    for (what, form) in attempts {
        let reply = browser.post("/authorize/login", &form).await;
        assert_page(&reply, 403, "This form has expired");
        assert!(reply.header("set-cookie").is_none(), "{what}: no session");
        assert!(reply.text.contains("Start again"), "{what}: a way back");
    }
    // The right token without the cookie (a cross-site form cannot send it).
    let mut stranger = Browser::new(&server);
    let form = [("csrf_token", token.as_str()), ("request", &request), ("username", "alice"), ("password", PASSWORD)];
    assert_page(&stranger.post("/authorize/login", &form).await, 403, "This form has expired");
    // The browser says the post comes from another site.
    let reply = server
        .http
        .post(server.url("/authorize/login"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_page(&Reply::from(reply).await, 403, "This form has expired");

    // Signed in, the consent post needs the token too.
    let consent = signed_in(&mut browser, &authz).await;
    let request = field(&consent.text, "request");
    let reply = browser.post("/authorize/consent", &[("request", &request), ("decision", "approve")]).await;
    assert_page(&reply, 403, "This form has expired");
    let reply = browser
        .post("/authorize/consent", &[("csrf_token", &other), ("request", &request), ("decision", "approve")])
        .await;
    assert_page(&reply, 403, "This form has expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    for attempt in 1..=10 {
        let reply = sign_in(&mut browser, &authz, "alice", "wrong").await;
        assert_eq!(reply.status, 401, "attempt {attempt} is checked");
    }
    let limited = sign_in(&mut browser, &authz, "alice", PASSWORD).await;
    assert_page(&limited, 429, "Too many sign-in attempts. Try again in ");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=600).contains(&retry), "within two windows: {retry}");
    assert!(!browser.cookies.keys().any(|k| k.contains("session")), "even the right password is refused meanwhile");

    // Another username from the same address still works…
    add_user(&server, "bob", false).await;
    assert_eq!(sign_in(&mut Browser::new(&server), &authz, "bob", PASSWORD).await.status, 303);
    // …and alice can sign in once the window has passed.
    server.advance(Duration::from_secs(600));
    assert_eq!(sign_in(&mut browser, &authz, "alice", PASSWORD).await.status, 303);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    for i in 0..30 {
        let reply = sign_in(&mut Browser::new(&server), &authz, &format!("user{i}"), "guess").await;
        assert_eq!(reply.status, 401, "attempt {i}");
    }
    let limited = sign_in(&mut Browser::new(&server), &authz, "alice", PASSWORD).await;
    assert_page(&limited, 429, "Too many sign-in attempts.");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_clients_and_users_control() {
    let server = TestServer::start(Backend::Memory).await;
    add_user(&server, "<b>alice</b>", false).await;
    let mut spec = ClientSpec::public_app();
    spec.name = "<script>alert('x')</script> & \"Co\"".into();
    let (client_id, _) = server.add_client(spec).await;
    let authz = Authz::new(&client_id).set("state", "\"><script>alert(1)</script>");
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    assert_page(&page, 200, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;");
    assert!(!page.text.contains("<script"), "nothing a client sends becomes markup:\n{}", page.text);
    let carried = field(&page.text, "request");
    let state = form_urlencoded::parse(carried.as_bytes()).find(|(k, _)| k == "state").unwrap().1;
    assert_eq!(state, authz.get("state"), "the request is carried intact");

    let reply = browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &field(&page.text, "csrf_token")),
                ("request", &field(&page.text, "request")),
                ("username", "<b>alice</b>"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let consent = browser.get(reply.header("location").unwrap()).await;
    assert_page(&consent, 200, "Signed in as <strong>&lt;b&gt;alice&lt;/b&gt;</strong>");
    assert!(!consent.text.contains("<script") && !consent.text.contains("<b>"), "{}", consent.text);

    // A failed attempt echoes the username escaped.
    let mut other = Browser::new(&server);
    let reply = sign_in(&mut other, &authz, "\"><img src=x>", "wrong").await;
    assert_page(&reply, 401, "value=\"&quot;&gt;&lt;img src=x&gt;\"");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_requests_are_validated_again() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    let token = field(&page.text, "csrf_token");

    // The hidden request swapped for one with an unregistered redirect URI: shown, never followed.
    let tampered = Authz::new(&client_id).set("redirect_uri", "https://evil.example/cb").url();
    let tampered = tampered.trim_start_matches("/authorize?");
    let form = [("csrf_token", token.as_str()), ("request", tampered), ("username", "alice"), ("password", PASSWORD)];
    let reply = browser.post("/authorize/login", &form).await;
    assert_page(&reply, 400, "not registered for this application");
    assert!(!browser.cookies.keys().any(|k| k.contains("session")), "no sign-in on a bad request");

    // …and swapped for plain PKCE: redirected with the error, no sign-in.
    let plain = Authz::new(&client_id).set("code_challenge_method", "plain").url();
    let form = [
        ("csrf_token", token.as_str()),
        ("request", plain.trim_start_matches("/authorize?")),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let params = redirected_to(&browser.post("/authorize/login", &form).await, REDIRECT);
    assert_eq!(params["error"], "invalid_request");

    // A repeated field in the form itself.
    let reply = server
        .http
        .post(server.url("/authorize/login"))
        .header("cookie", browser.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&csrf_token={token}&username=alice"))
        .send()
        .await
        .unwrap();
    assert_page(&Reply::from(reply).await, 400, "repeated");
    // No request at all.
    let reply = browser.post("/authorize/login", &[("csrf_token", &token), ("username", "alice")]).await;
    assert_page(&reply, 400, "does not carry the authorization request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_consent_needs_one() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    assert_page(&consent, 200, "wants to access your account");

    server.advance(Duration::from_secs(12 * 3600));
    // The consent page was open while the session ended: approving leads back to sign-in, issues nothing.
    let reply = decide(&mut browser, &consent, "approve").await;
    assert_eq!(reply.status, 303);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.starts_with(&server.url("/authorize?")), "back to the start, not to the client: {location}");
    assert_page(&browser.get(&location).await, 200, "Sign in");
    let user = server.store.find_user_by_username("alice").await.unwrap().unwrap();
    assert!(server.store.find_consent(&user.id, &client_id, server.clock_now()).await.unwrap().is_none());

    // A decision that is neither approve nor deny.
    let consent = signed_in(&mut browser, &authz).await;
    let form = [
        ("csrf_token", field(&consent.text, "csrf_token")),
        ("request", field(&consent.text, "request")),
        ("decision", "maybe".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_page(&browser.post("/authorize/consent", &form).await, 400, "Choose Approve or Deny.");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    signed_in(&mut browser, &authz).await;
    let mut alice = server.store.find_user_by_username("alice").await.unwrap().unwrap();
    alice.disabled = true;
    server.store.update_user(&alice).await.unwrap();
    assert_page(&browser.get(&authz.url()).await, 200, "Sign in");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_the_authorization_endpoint() {
    let server = TestServer::start(Backend::Memory).await;
    let reply = server.http.get(server.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    let m: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(m["authorization_endpoint"], server.url("/authorize"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert!(m["grant_types_supported"].as_array().unwrap().contains(&"authorization_code".into()));
    server.stop().await;
}
