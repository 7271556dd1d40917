//! Black-box tests of the `authflow` binary: start it as a user would and talk to it over loopback HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `authflow serve`; killed on drop.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn authflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
    // The tests' own environment must not configure the server under test.
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHFLOW_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd
}

async fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("authflow.db").display());
    let child = authflow()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Server { child, base, _dir: dir };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{}/health", server.base)).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(server._dir.path().join("stderr.log")).unwrap_or_default();
    panic!("authflow serve did not answer on {}:\n{log}", server.base);
}

#[tokio::test]
async fn serve_answers_health_ready_and_discovery_on_the_embedded_default() {
    let server = start(&[]).await;
    let client = reqwest::Client::new();

    let health = client.get(format!("{}/health", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value =
        client.get(format!("{}/ready", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["storage"], "sqlite");

    let meta = client.get(format!("{}/.well-known/oauth-authorization-server", server.base)).send().await.unwrap();
    assert_eq!(meta.status(), 200);
    assert!(meta.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let meta: serde_json::Value = meta.json().await.unwrap();
    assert_eq!(meta["issuer"], server.base, "issuer defaults to the listen address");
}

#[tokio::test]
async fn issuer_flag_is_published_and_env_configures_too() {
    let server = start(&["--issuer", "https://auth.example.com/tenant"]).await;
    let client = reqwest::Client::new();
    // RFC 8414 §3.1: for an issuer with a path, the metadata lives at the path-inserted URL.
    let url = format!("{}/.well-known/oauth-authorization-server/tenant", server.base);
    let meta: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], "https://auth.example.com/tenant");
}

#[test]
fn bad_configuration_fails_with_a_clear_error() {
    let out = authflow()
        .args(["serve", "--listen", "127.0.0.1:0", "--issuer", "http://auth.example.com", "--database", "memory:"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid issuer"), "{err}");

    let out = authflow().args(["serve", "--database", "mysql://nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
}

#[test]
fn migrate_applies_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = authflow().args(["migrate", "--database", &db]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied (sqlite backend)"));
    }
}

#[test]
fn help_explains_the_commands() {
    let out = authflow().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "AUTHFLOW_", "--config"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = authflow().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--listen", "--issuer", "--database", "--redis", "AUTHFLOW_LISTEN"] {
        assert!(text.contains(word), "serve --help lacks {word}:\n{text}");
    }
}
