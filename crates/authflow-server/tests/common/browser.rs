//! The browser side of the authorization code flow, for tests: a cookie jar that posts the sign-in and
//! consent forms as a browser would, and a client's authorization request with its PKCE verifier.

use std::collections::BTreeMap;

use authflow_core::password::{hash_password_with, PasswordPolicy};
use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_server::OsEntropy;
use authflow_store::User;
use url::Url;

use super::{Backend, ClientSpec, Reply, TestServer};

pub const PASSWORD: &str = "correct horse battery staple";
pub const RESOURCE: &str = "https://mcp.example/mcp";
pub const REDIRECT: &str = "http://127.0.0.1:33418/callback";

// ---- a tiny browser --------------------------------------------------------------------------------------

/// A cookie jar over the harness's HTTP client (which never follows redirects).
pub struct Browser<'a> {
    pub server: &'a TestServer,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        Browser { server, cookies: BTreeMap::new() }
    }

    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            self.server.url(url)
        } else {
            url.to_owned()
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn remember(&mut self, reply: &Reply) {
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

    pub async fn get(&mut self, url: &str) -> Reply {
        let req = self.server.http.get(self.absolute(url)).header("cookie", self.cookie_header());
        let reply = Reply::from(req.send().await.unwrap()).await;
        self.remember(&reply);
        reply
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let req = self.server.http.post(self.absolute(path)).header("cookie", self.cookie_header()).form(form);
        let reply = Reply::from(req.send().await.unwrap()).await;
        self.remember(&reply);
        reply
    }
}

/// The value of the input named `name` in a page (our pages write `name="…" value="…"`).
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name} in:\n{html}")) + marker.len();
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    raw.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[track_caller]
pub fn assert_page(reply: &Reply, status: u16, needle: &str) {
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
pub fn redirected_to(reply: &Reply, redirect_uri: &str) -> BTreeMap<String, String> {
    assert_eq!(reply.status, 303, "expected a redirect to the client; body:\n{}", reply.text);
    let location = reply.header("location").expect("a Location header");
    assert!(location.starts_with(redirect_uri), "{location} should start with {redirect_uri}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

// ---- a client's side of the flow -------------------------------------------------------------------------

/// An authorization request under construction, with its PKCE verifier.
pub struct Authz {
    pub params: BTreeMap<String, String>,
    pub verifier: CodeVerifier,
}

impl Authz {
    pub fn new(client_id: &str) -> Self {
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

    pub fn set(mut self, k: &str, v: &str) -> Self {
        self.params.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn without(mut self, k: &str) -> Self {
        self.params.remove(k);
        self
    }

    pub fn get(&self, k: &str) -> &str {
        &self.params[k]
    }

    pub fn url(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish();
        format!("/authorize?{query}")
    }
}

pub async fn add_user(server: &TestServer, username: &str, disabled: bool) -> String {
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
pub async fn setup(backend: Backend) -> (TestServer, String) {
    setup_with(backend, |b| b).await
}

pub async fn setup_with(
    backend: Backend,
    configure: impl FnOnce(authflow_server::AuthServerBuilder) -> authflow_server::AuthServerBuilder,
) -> (TestServer, String) {
    let server = TestServer::start_with(backend, configure).await;
    add_user(&server, "alice", false).await;
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    (server, client_id)
}

/// GET the authorization URL, expect the sign-in page, and post the credentials.
pub async fn sign_in(browser: &mut Browser<'_>, authz: &Authz, username: &str, password: &str) -> Reply {
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
pub async fn signed_in(browser: &mut Browser<'_>, authz: &Authz) -> Reply {
    let reply = sign_in(browser, authz, "alice", PASSWORD).await;
    assert_eq!(reply.status, 303, "signing in redirects; body:\n{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.starts_with(&browser.server.url("/authorize?")), "back to the authorization endpoint");
    browser.get(&location).await
}

pub async fn decide(browser: &mut Browser<'_>, consent_page: &Reply, decision: &str) -> Reply {
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
pub async fn code_for(server: &TestServer, authz: &Authz) -> String {
    let mut browser = Browser::new(server);
    let consent = signed_in(&mut browser, authz).await;
    let answer = decide(&mut browser, &consent, "approve").await;
    redirected_to(&answer, authz.get("redirect_uri"))["code"].clone()
}

pub async fn exchange(server: &TestServer, client_id: &str, code: &str, redirect_uri: &str, verifier: &str) -> Reply {
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
pub async fn introspector(server: &TestServer) -> (String, String) {
    let (id, secret) = server.add_client(ClientSpec::service().resources(&[RESOURCE])).await;
    (id, secret.unwrap())
}

pub async fn active(server: &TestServer, introspector: &(String, String), token: &str) -> bool {
    let reply = server.post_form("/introspect", &[("token", token)], Some((&introspector.0, &introspector.1))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["active"].as_bool().unwrap()
}
