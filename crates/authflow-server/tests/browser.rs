//! The authorization endpoint in a real browser: headless Chromium (Debian package `chromium`) driven by
//! `chromedriver` (package `chromium-driver`) over the W3C WebDriver protocol, with a minimal client written
//! here over reqwest. This is what proves the pages work where it matters: cookies, the CSP (`form-action`
//! must let the redirect after a form post through), and the redirects back to the client.
//!
//! Screenshots of the pages land in `target/screenshots/` for people to look at.
//!
//! Missing tools fail the tests (never skip them), naming the packages to install.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authflow_core::password::{hash_password_with, PasswordPolicy};
use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_server::OsEntropy;
use authflow_store::User;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{Backend, ClientSpec, TestServer};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "correct horse battery staple";
/// The W3C key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---- the WebDriver client --------------------------------------------------------------------------------

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
}

/// `chromedriver`, started on a free port and killed when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start() -> Driver {
        let missing = |what: &str| -> ! {
            panic!(
                "\n\n{what} not found. The browser tests need Debian's Chromium and its WebDriver:\n    \
                 apt-get update && apt-get install -y chromium chromium-driver\n(.ci/run installs them.)\n"
            )
        };
        if !Path::new(CHROMIUM).is_file() {
            missing(CHROMIUM);
        }
        let chromedriver = find_in_path("chromedriver").unwrap_or_else(|| missing("chromedriver"));
        // A free port: bind, read it, release it for chromedriver.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = driver.http.get(format!("{}/status", driver.base)).send().await;
            if let Ok(r) = ready {
                let status: Value = r.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium with a fresh profile in `profile`.
    async fn session(self: &Arc<Self>, profile: &Path) -> Browser {
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1200,860".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let reply = self.call(reqwest::Method::POST, "/session", Some(caps)).await;
        let id = reply["sessionId"].as_str().expect("a session id").to_owned();
        Browser { driver: self.clone(), id }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let reply = req.send().await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or_default();
        assert!(status.is_success(), "WebDriver {method} {path} failed ({status}): {}", body["value"]);
        body["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Our own child process, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser {
    driver: Arc<Driver>,
    id: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body).await
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let found = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})));
        found.await[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// Wait until the current URL satisfies `ok`; fail with the URL and page otherwise.
    async fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if ok(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!("never reached {what}; stuck at {url}\n{}", self.source().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the page contains `text`.
    async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.source().await.contains(text) {
            assert!(Instant::now() < deadline, "the page never showed {text:?}:\n{}", self.source().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Save a PNG of the viewport as `target/screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = STANDARD.decode(png.as_str().expect("base64 PNG")).expect("valid base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

/// `target/screenshots`, found from this test binary's path (`target/<profile>/deps/browser-…`).
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).map(|target| target.join("screenshots")).unwrap_or_else(|| PathBuf::from("screenshots"))
}

// ---- the scene --------------------------------------------------------------------------------------------

/// A server with user alice and a desktop MCP client whose loopback redirect URI (any port) points at a tiny
/// listener, as a native app's would.
struct Scene {
    server: TestServer,
    client_id: String,
    callback: String,
    listener: tokio::task::JoinHandle<()>,
}

impl Scene {
    async fn new() -> Scene {
        let server = TestServer::start(Backend::Memory).await;
        let hash = hash_password_with(PASSWORD, &PasswordPolicy::insecure_fast_for_tests(), &mut OsEntropy).unwrap();
        let alice = User {
            id: "user-alice".into(),
            username: "alice".into(),
            password_hash: Some(hash),
            created_at: server.clock_now(),
            disabled: false,
        };
        server.store.insert_user(&alice).await.unwrap();
        let mut spec = ClientSpec::public_app();
        spec.name = "Notes Desktop".into();
        spec.redirect_uris = vec!["http://127.0.0.1/callback".into()];
        let (client_id, _) = server.add_client(spec).await;

        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let callback = format!("http://127.0.0.1:{}/callback", socket.local_addr().unwrap().port());
        let app = axum::Router::new()
            .route("/callback", axum::routing::get(|| async { axum::response::Html("<h1>Back in the app</h1>") }));
        let listener = tokio::spawn(async move {
            let _ = axum::serve(socket, app).await;
        });
        Scene { server, client_id, callback, listener }
    }

    fn authorize_url(&self, verifier: &CodeVerifier, state: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", &self.client_id),
                ("redirect_uri", &self.callback),
                ("code_challenge", CodeChallenge::s256(verifier).as_str()),
                ("code_challenge_method", "S256"),
                ("scope", "notes:read notes:write"),
                ("resource", "https://mcp.example/mcp"),
                ("state", state),
            ])
            .finish();
        self.server.url(&format!("/authorize?{query}"))
    }

    async fn stop(self) {
        self.listener.abort();
        self.server.stop().await;
    }
}

/// Run `body` with a fresh browser; the session ends, the profile is removed and chromedriver stops whether
/// `body` passes or not.
async fn with_browser<F, Fut>(body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let driver = Arc::new(Driver::start().await);
    let profile = std::env::temp_dir().join(format!("authflow-chromium-{}", &authflow_server::random_id()[..16]));
    std::fs::create_dir_all(&profile).unwrap();
    let browser = driver.session(&profile).await;
    let session = Browser { driver: driver.clone(), id: browser.id.clone() };
    let outcome = tokio::spawn(body(browser)).await;
    session.quit().await;
    drop(driver); // the last reference: chromedriver is stopped
    let _ = std::fs::remove_dir_all(&profile);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- tests -------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_and_approves() {
    let scene = Scene::new().await;
    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let url = scene.authorize_url(&verifier, "browser-state");
    let callback = scene.callback.clone();
    let base = scene.server.base.clone();
    let code = Arc::new(Mutex::new(String::new()));
    let found = code.clone();

    with_browser(move |b| async move {
        b.goto(&url).await;
        b.wait_for_text("to continue to").await;
        b.screenshot("login").await;

        // A wrong password first: the page comes back with the message.
        b.type_into("#username", "alice").await;
        b.type_into("#password", "not it").await;
        b.click("button[type=submit]").await;
        b.wait_for_text("Incorrect username or password.").await;
        b.screenshot("login-error").await;

        b.type_into("#password", PASSWORD).await;
        b.click("button[type=submit]").await;
        b.wait_for_text("wants to access your account").await;
        b.screenshot("consent").await;

        b.click("button[value=approve]").await;
        let landed = b.wait_for_url("the client's redirect URI", |u| u.starts_with(&callback)).await;
        b.wait_for_text("Back in the app").await;
        let params: Vec<(String, String)> = url::Url::parse(&landed).unwrap().query_pairs().into_owned().collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("state").as_deref(), Some("browser-state"));
        assert_eq!(get("iss").as_deref(), Some(base.as_str()));
        *found.lock().unwrap() = get("code").expect("a code in the final URL");
    })
    .await;

    let code = code.lock().unwrap().clone();
    assert!(code.starts_with("af_ac_"));
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", scene.client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", scene.callback.as_str()),
        ("code_verifier", verifier.expose()),
    ];
    scene.server.post_form("/token", &form, None).await.assert_token();
    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_denies() {
    let scene = Scene::new().await;
    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let url = scene.authorize_url(&verifier, "deny-state");
    let unknown = scene.server.url("/authorize?response_type=code&client_id=nobody");
    let callback = scene.callback.clone();

    with_browser(move |b| async move {
        b.goto(&unknown).await;
        b.wait_for_text("not registered with this server").await;
        b.screenshot("error").await;

        b.goto(&url).await;
        b.type_into("#username", "alice").await;
        b.type_into("#password", PASSWORD).await;
        b.click("button[type=submit]").await;
        b.wait_for_text("wants to access your account").await;
        b.click("button[value=deny]").await;
        let landed = b.wait_for_url("the client's redirect URI", |u| u.starts_with(&callback)).await;
        assert!(landed.contains("error=access_denied"), "{landed}");
        assert!(landed.contains("state=deny-state"), "{landed}");
        assert!(!landed.contains("code="), "{landed}");
    })
    .await;
    scene.stop().await;
}

/// The device flow's verification page: the code typed as a person would (lower case, no hyphen), sign in,
/// check the code on the consent page, approve; the device's next poll gets tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_the_device_verification() {
    let scene = Scene::new().await;
    let mut spec = ClientSpec::public_app();
    spec.name = "Notes CLI".into();
    spec.redirect_uris = vec![];
    spec.grant_types = vec![authflow_core::GrantType::DeviceCode];
    let (cli, _) = scene.server.add_client(spec).await;
    let form = [("client_id", cli.as_str()), ("scope", "notes:read")];
    let started = scene.server.post_form("/device_authorization", &form, None).await;
    assert_eq!(started.status, 200, "{}", started.text);
    let user_code = started.body["user_code"].as_str().unwrap().to_owned();
    let device_code = started.body["device_code"].as_str().unwrap().to_owned();
    let entry = started.body["verification_uri"].as_str().unwrap().to_owned();

    with_browser(move |b| async move {
        b.goto(&entry).await;
        b.wait_for_text("Enter the code your device shows").await;
        b.screenshot("device-entry").await;
        b.type_into("#user_code", &user_code.replace('-', "").to_lowercase()).await;
        b.click("button[type=submit]").await;
        b.wait_for_text("to continue to").await;
        b.type_into("#username", "alice").await;
        b.type_into("#password", PASSWORD).await;
        b.click("button[type=submit]").await;
        b.wait_for_text(&format!("Check that your device shows the code <strong>{user_code}</strong>")).await;
        b.screenshot("device-consent").await;
        b.click("button[value=approve]").await;
        b.wait_for_text("Device connected").await;
        b.screenshot("device-done").await;
    })
    .await;

    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", &cli),
        ("device_code", &device_code),
    ];
    let tokens = scene.server.post_form("/token", &poll, None).await;
    assert_eq!(tokens.assert_token()["scope"], "notes:read");
    scene.stop().await;
}
