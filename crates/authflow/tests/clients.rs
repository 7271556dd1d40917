//! Real MCP clients against authflow: the official TypeScript and Python SDKs, installed from npm and PyPI
//! at the versions pinned in `examples/notes-mcp/clients/`, run the whole authorization flow with their own
//! OAuth code against `authflow demo` (the real binary) and against `authflow gateway` in front of an
//! unprotected notes server.
//!
//! Node.js (with npm) and Python 3 (with venv) must be installed; without them these tests fail and say so.
//! The clients are installed once (`npm ci` into the ignored `node_modules`, a venv under `target/`) and
//! reused by later runs until their lock files change.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, SystemTime};

use authflow_core::{ClientAuthMethod, Scope, SecretToken, TokenKind, UnixTime};
use authflow_server::{random_id, AuthServer, Clock, OsEntropy, SystemClock};
use authflow_store::{Client, ClientMetadata, ClientOrigin, MemoryStore, Store, User};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_authflow");

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notes-mcp/clients")
}

/// Run a command to completion, failing the test with its output if it fails.
fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Fail loudly when a tool the tests need is missing.
fn require_tool(program: &str, install: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("`{program}` is required for the MCP client tests: {install}"),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
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
                    if modified(&path)
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600)) =>
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

/// `node` and the TypeScript client's dependencies (`npm ci` when `package-lock.json` changed).
fn typescript_client() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        require_tool("node", "install Node.js 20 or newer (with npm)");
        require_tool("npm", "install npm (it ships with Node.js)");
        let dir = clients_dir().join("ts");
        let _lock = InstallLock::take(Path::new(env!("CARGO_TARGET_TMPDIR")).join("notes-mcp-ts.lock"));
        let installed = modified(&dir.join("node_modules/.package-lock.json"));
        if installed.is_none() || installed < modified(&dir.join("package-lock.json")) {
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci");
        }
        dir
    })
}

/// A Python venv under `target/` with the pinned `mcp` SDK (reinstalled when requirements.txt changes).
fn python_client() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        require_tool("python3", "install Python 3.10 or newer with the venv module (Debian: python3-venv)");
        let requirements = clients_dir().join("python/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notes-mcp-python");
        std::fs::create_dir_all(&root).unwrap();
        let _lock = InstallLock::take(root.join("install.lock"));
        let venv = root.join("venv");
        let stamp = root.join("installed.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let _ = std::fs::remove_dir_all(&venv);
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv");
            run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(&requirements),
                "pip install",
            );
            std::fs::write(&stamp, &wanted).unwrap();
        }
        venv.join("bin/python")
    })
}

/// A child process that is killed when the test ends, whatever happens.
struct Process {
    child: Child,
    stderr: PathBuf,
}

impl Process {
    /// Start `command` with stdout piped; read stdout until `done` says the banner is complete.
    fn start(mut command: Command, log_dir: &Path, done: impl Fn(&str) -> bool) -> (Process, Vec<String>) {
        let stderr = log_dir.join("stderr.log");
        command.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr).unwrap()).env("AUTHFLOW_LOG", "info");
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the test stopped listening: a closed pipe would fail the server's writes.
                let _ = tx.send(line);
            }
        });
        let process = Process { child, stderr };
        let mut lines = Vec::new();
        while !lines.last().is_some_and(|l: &String| done(l)) {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => lines.push(line),
                Err(_) => panic!("no banner; stdout so far: {lines:?}\nstderr:\n{}", process.logs()),
            }
        }
        (process, lines)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value after `label` on the banner line that starts with it.
fn banner_value(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} in {lines:?}"))
}

/// `authflow demo` on free loopback ports.
struct Demo {
    process: Process,
    mcp_url: String,
    issuer: String,
    password: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["demo", "--listen-auth", "127.0.0.1:0", "--listen-mcp", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path());
        let (process, lines) = Process::start(command, dir.path(), |l| l.trim_start().starts_with("password:"));
        Demo {
            mcp_url: banner_value(&lines, "MCP URL:"),
            issuer: banner_value(&lines, "authorization server:"),
            password: banner_value(&lines, "password:"),
            process,
            _dir: dir,
        }
    }
}

/// Run a client script; returns its `RESULT` object.
fn run_client(mut command: Command, mcp_url: &str, password: &str, server_logs: impl Fn() -> String) -> Value {
    command.env("MCP_URL", mcp_url).env("AUTHFLOW_USERNAME", "demo").env("AUTHFLOW_PASSWORD", password);
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
    match (output.status.success(), result) {
        (true, Some(result)) => serde_json::from_str(result).expect("RESULT is JSON"),
        _ => panic!(
            "the client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver logs:\n{}",
            output.status,
            server_logs()
        ),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (as the SDKs put it in the authorization URL).
fn url_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What every client must have done, whichever SDK and whatever is in front of the notes server.
fn assert_full_flow(result: &Value, mcp_url: &str, issuer: &str, title: &str) {
    assert_eq!(
        result["tools"],
        serde_json::json!(["create_note", "delete_note", "get_note", "list_notes", "update_note"]),
        "{result}"
    );
    assert!(result["client_id"].as_str().is_some_and(|id| !id.is_empty()), "dynamically registered: {result}");
    assert_eq!(result["authorizations"], 1, "one trip through the browser: {result}");
    let authorization_url = result["authorization_url"].as_str().unwrap();
    assert!(authorization_url.starts_with(&format!("{issuer}/authorize?")), "{authorization_url}");
    assert!(authorization_url.contains("code_challenge_method=S256"), "PKCE: {authorization_url}");
    assert!(authorization_url.contains(&format!("resource={}", url_encoded(mcp_url))), "RFC 8707: {authorization_url}");
    assert!(authorization_url.contains("notes%3Awrite"), "the advertised scopes are asked for: {authorization_url}");
    assert_eq!(result["callback_iss"], issuer, "RFC 9207 iss in the redirect");
    assert_eq!(result["scope"], "notes:read notes:write");

    let created = &result["created"];
    assert_eq!(created["title"], title);
    let id = created["id"].as_i64().expect("the created note has an id");
    let has_note = |list: &Value| list.as_array().is_some_and(|notes| notes.iter().any(|n| n["id"] == id));
    assert!(has_note(&result["listed"]), "{result}");

    assert_eq!(result["token_saves"], 2, "the code exchange and one refresh: {result}");
    assert_eq!(result["access_token_rotated"], true, "{result}");
    assert_eq!(result["refresh_token_rotated"], true, "refresh tokens rotate: {result}");
    assert!(has_note(&result["after_refresh"]), "the refreshed token works: {result}");
}

#[test]
fn typescript_sdk_signs_in_registers_and_refreshes_against_the_demo() {
    let dir = typescript_client();
    let demo = Demo::start();
    let mut command = Command::new("node");
    command.arg("flow.mjs").current_dir(dir);
    let result = run_client(command, &demo.mcp_url, &demo.password, || demo.process.logs());
    assert_full_flow(&result, &demo.mcp_url, &demo.issuer, "from ts");
}

#[test]
fn python_sdk_signs_in_registers_and_refreshes_against_the_demo() {
    let python = python_client();
    let demo = Demo::start();
    let mut command = Command::new(python);
    command.arg(clients_dir().join("python/flow.py"));
    let result = run_client(command, &demo.mcp_url, &demo.password, || demo.process.logs());
    assert_full_flow(&result, &demo.mcp_url, &demo.issuer, "from python");
}

/// Serve `app` on a free loopback port in a background runtime; returns the base URL.
fn serve_in_background(runtime: &tokio::runtime::Runtime, app: axum::Router) -> String {
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    base
}

#[test]
fn typescript_sdk_signs_in_through_the_gateway_in_front_of_an_unprotected_server() {
    let dir = typescript_client();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // An authorization server with the demo user, in process.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let password = "a long gateway test password";
    let user = User {
        id: random_id(),
        username: "demo".into(),
        password_hash: Some(authflow_core::password::hash_password(password, &mut OsEntropy).unwrap()),
        created_at: SystemClock.now(),
        disabled: false,
    };
    runtime.block_on(store.insert_user(&user)).unwrap();
    let as_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let server = AuthServer::builder(issuer.parse().unwrap(), store.clone())
        .scopes(vec!["notes:read".into(), "notes:write".into()])
        .build()
        .unwrap();
    let router = server.router();
    runtime.spawn(async move {
        axum::serve(as_listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });

    // The notes server with no authorization of its own: it trusts the gateway's X-Auth-* headers.
    let notes = runtime.block_on(notes_mcp::NoteStore::memory()).unwrap();
    let upstream =
        serve_in_background(&runtime, notes_mcp::NotesApp::new(notes.clone()).behind_gateway("/mcp").unwrap());

    // The real `authflow gateway` in front of it.
    let secret = SecretToken::generate(TokenKind::ClientSecret, UnixTime::EPOCH, &mut OsEntropy);
    let log_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--upstream", &format!("{upstream}/mcp"), "--issuer", &issuer])
        // Requires notes:read on every request; the 401 advertises both scopes, so the SDK can write.
        .args(["--introspection-client-id", "gateway", "--scope", "notes:read", "--scopes-supported", "notes:write"])
        .env("AUTHFLOW_GATEWAY_INTROSPECTION_CLIENT_SECRET", secret.expose());
    let (gateway, lines) = Process::start(command, log_dir.path(), |l| l.trim_start().starts_with("forward auth:"));
    let resource = banner_value(&lines, "authflow gateway:");

    // The gateway's own client: it may introspect tokens for its resource.
    let client = Client {
        client_id: "gateway".into(),
        secret_hash: Some(secret.hash()),
        registration_token_hash: None,
        metadata: ClientMetadata {
            client_name: Some("gateway".into()),
            redirect_uris: vec![],
            grant_types: vec![],
            token_endpoint_auth_method: ClientAuthMethod::ClientSecretBasic,
            scope: Some(Scope::parse("notes:read").unwrap()),
            resources: vec![resource.clone()],
            jwks: None,
            jwks_uri: None,
            extra: Default::default(),
        },
        origin: ClientOrigin::Admin,
        created_at: SystemClock.now(),
        expires_at: None,
        disabled: false,
    };
    runtime.block_on(store.insert_client(&client)).unwrap();

    let mut command = Command::new("node");
    command.arg("flow.mjs").current_dir(dir);
    let result = run_client(command, &resource, password, || gateway.logs());
    assert_full_flow(&result, &resource, &issuer, "from ts");

    // The upstream filed the note under the user the token was issued for: the gateway told it who.
    let owned = runtime.block_on(notes.list(&user.id)).unwrap();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].title, "from ts");
}
