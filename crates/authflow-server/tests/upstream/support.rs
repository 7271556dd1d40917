//! Shared by the upstream-identity tests: a browser that keeps cookies per host and path (it visits
//! authflow and a provider), node-oidc-provider as a child process, and helpers for the MCP client's side.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use url::Url;

use crate::common::Reply;

// ---- a browser across hosts ------------------------------------------------------------------------------

/// A cookie jar keyed by `host:port` and path, over a client that never follows redirects.
pub struct Agent {
    http: reqwest::Client,
    /// (authority, path, name) → value.
    cookies: Vec<(String, String, String, String)>,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            cookies: Vec::new(),
        }
    }
}

fn authority(url: &Url) -> String {
    format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap())
}

impl Agent {
    fn cookie_header(&self, url: &Url) -> String {
        let here = authority(url);
        self.cookies
            .iter()
            .filter(|(a, path, _, _)| *a == here && url.path().starts_with(path.as_str()))
            .map(|(_, _, k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, url: &Url, reply: &Reply) {
        for line in reply.headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let mut parts = line.split(';');
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_owned();
            let mut gone = false;
            for attribute in parts {
                let attribute = attribute.trim();
                let lower = attribute.to_ascii_lowercase();
                if let Some(p) = lower.strip_prefix("path=") {
                    path = attribute[5..5 + p.len()].to_owned();
                }
                gone |= lower == "max-age=0";
            }
            let a = authority(url);
            self.cookies.retain(|(ca, cp, cn, _)| !(ca == &a && cp == &path && cn == name));
            if !gone {
                self.cookies.push((a, path, name.to_owned(), value.to_owned()));
            }
        }
    }

    /// Whether a cookie of this name is held for `url`'s host.
    pub fn has_cookie(&self, url: &str, name: &str) -> bool {
        let a = authority(&Url::parse(url).unwrap());
        self.cookies.iter().any(|(ca, _, cn, _)| *ca == a && cn == name)
    }

    /// A cookie's value for `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let a = authority(&Url::parse(url).unwrap());
        self.cookies.iter().find(|(ca, _, cn, _)| *ca == a && cn == name).map(|c| c.3.clone())
    }

    /// Put a cookie back (to replay an old one).
    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let a = authority(&Url::parse(url).unwrap());
        self.cookies.retain(|(ca, _, cn, _)| !(*ca == a && cn == name));
        self.cookies.push((a, "/".into(), name.into(), value.into()));
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        let url = Url::parse(url).unwrap();
        let request = self.http.get(url.clone()).header("cookie", self.cookie_header(&url));
        let reply = Reply::from(request.send().await.unwrap()).await;
        self.remember(&url, &reply);
        reply
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Reply {
        let url = Url::parse(url).unwrap();
        let request = self.http.post(url.clone()).header("cookie", self.cookie_header(&url)).form(form);
        let reply = Reply::from(request.send().await.unwrap()).await;
        self.remember(&url, &reply);
        reply
    }

    /// Follow redirects from `reply` (which came from `from`) until a page, or until the next hop would
    /// leave for a URL starting with `stop_at` (returned unvisited, with the reply that pointed there).
    pub async fn follow(&mut self, from: &str, mut reply: Reply, stop_at: &str) -> (String, Reply) {
        let mut here = Url::parse(from).unwrap();
        for _ in 0..10 {
            let Some(location) = reply.header("location") else { return (here.to_string(), reply) };
            let next = here.join(location).unwrap();
            if next.as_str().starts_with(stop_at) {
                return (next.to_string(), reply);
            }
            reply = self.get(next.as_str()).await;
            here = next;
        }
        panic!("too many redirects");
    }
}

/// The `action` of the first form in `html` (absolute, against `base`).
pub fn form_action(html: &str, base: &str) -> String {
    let start = html.find("action=\"").expect("a form") + 8;
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    Url::parse(base).unwrap().join(&raw.replace("&amp;", "&")).unwrap().to_string()
}

/// The query parameters of a URL.
pub fn query(url: &str) -> std::collections::BTreeMap<String, String> {
    Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

// ---- node-oidc-provider ----------------------------------------------------------------------------------

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Fail loudly when a tool the tests need is missing.
fn require_tool(program: &str, install: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("`{program}` is required for the upstream OpenID Connect tests: {install}"),
    }
}

/// A lock directory shared by test processes (creating a directory is atomic), so two test runs never
/// install into the same place at once. A lock older than ten minutes is a crashed run's and is taken over.
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(path: PathBuf) -> InstallLock {
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return InstallLock(path),
                Err(_)
                    if modified(&path).and_then(|t| t.elapsed().ok()).is_some_and(|a| a > Duration::from_secs(600)) =>
                {
                    let _ = std::fs::remove_dir(&path);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `node`, and `oidc-provider` installed from the committed lock file (`npm ci` when it changed).
fn installed() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        require_tool("node", "install Node.js 20 or newer (with npm)");
        require_tool("npm", "install npm (it ships with Node.js)");
        let dir = provider_dir();
        let _lock = InstallLock::take(Path::new(env!("CARGO_TARGET_TMPDIR")).join("upstream-oidc-provider.lock"));
        let installed = modified(&dir.join("node_modules/.package-lock.json"));
        if installed.is_none() || installed < modified(&dir.join("package-lock.json")) {
            let output = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("cannot run npm ci: {e}"));
            assert!(
                output.status.success(),
                "npm ci failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        dir
    })
}

/// node-oidc-provider on a loopback port; killed when dropped.
pub struct NodeProvider {
    pub issuer: String,
    child: Child,
}

impl NodeProvider {
    /// Start the provider with one client (`client_id`/`client_secret`, authenticating by `auth_method`)
    /// whose redirect URI is `redirect_uri`.
    pub async fn start(redirect_uri: &str, client_id: &str, client_secret: &str, auth_method: &str) -> NodeProvider {
        let dir = tokio::task::spawn_blocking(installed).await.unwrap();
        // Seen once in CI: node (20, which oidc-provider calls unsupported) stuck for good with its main thread
        // in a futex wait before it printed its issuer. A provider that has not started in this long is
        // killed and started again, saying so; a third failure fails the test.
        for attempt in 1..=STARTS {
            let (child, issuer) = Self::spawn(dir, redirect_uri, client_id, client_secret, auth_method);
            match tokio::time::timeout(START_WITHIN, issuer).await {
                Ok(issuer) => {
                    let issuer = issuer.unwrap();
                    let issuer =
                        issuer.trim().strip_prefix("ISSUER ").unwrap_or_else(|| panic!("no issuer line: {issuer:?}"));
                    return NodeProvider { issuer: issuer.to_owned(), child };
                }
                Err(_) => eprintln!(
                    "WARNING: node-oidc-provider printed no issuer within {START_WITHIN:?} (start {attempt} of \
                     {STARTS}); killing it"
                ),
            }
            drop(NodeProvider { issuer: String::new(), child });
        }
        panic!("node-oidc-provider did not start in {STARTS} tries");
    }

    /// Start node; the first line it prints arrives on the receiver.
    fn spawn(
        dir: &Path,
        redirect_uri: &str,
        client_id: &str,
        client_secret: &str,
        auth_method: &str,
    ) -> (Child, tokio::sync::oneshot::Receiver<String>) {
        // Its warnings and any crash report, one file per provider, to read when a test fails.
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oidc-provider-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let stderr = logs.join(format!("{}.stderr", authflow_server::random_id()));
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir)
            .env("REDIRECT_URI", redirect_uri)
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", client_secret)
            .env("AUTH_METHOD", auth_method)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Keep reading stdout for the provider's whole life, so it never writes into a closed pipe.
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines {}
        });
        (child, rx)
    }
}

/// How long node-oidc-provider gets to start (it takes well under a second), and how many starts.
const START_WITHIN: Duration = Duration::from_secs(30);
const STARTS: u32 = 3;

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
