//! Black-box tests of the admin commands (`authflow user …`, `authflow client …`) and of what they create
//! being usable by `authflow serve`.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn authflow(db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHFLOW_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("AUTHFLOW_DATABASE", db);
    cmd
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn users_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let mut add = authflow(&db);
    add.args(["user", "add", "alice", "--password-stdin"]);
    let user = json_of(&run_with_stdin(add, "correct horse battery staple\n"));
    assert_eq!(user["username"], "alice");
    assert!(user["sub"].as_str().unwrap().len() >= 22);

    let mut again = authflow(&db);
    again.args(["user", "add", "alice", "--password-stdin"]);
    let out = run_with_stdin(again, "x\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let mut empty = authflow(&db);
    empty.args(["user", "add", "bob", "--password-stdin"]);
    assert!(!run_with_stdin(empty, "\n").status.success(), "an empty password is refused");

    let out = authflow(&db).args(["user", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("\"alice\"") && !listed.contains("bob"), "{listed}");
    assert!(!listed.contains("argon2"), "password hashes are never printed");

    assert!(authflow(&db).args(["user", "remove", "alice"]).output().unwrap().status.success());
    assert!(!authflow(&db).args(["user", "remove", "alice"]).output().unwrap().status.success());
}

/// `user disable` locks the user out *and* revokes what they authorized; `enable` lets them sign in again
/// without reviving tokens; `remove` revokes too.
#[tokio::test]
async fn disabling_or_removing_a_user_revokes_their_tokens() {
    use authflow_store::{AccessToken, Grant};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("u.db").display());
    let mut add = authflow(&db);
    add.args(["user", "add", "alice", "--password-stdin"]);
    let alice = json_of(&run_with_stdin(add, "correct horse battery staple\n"))["sub"].as_str().unwrap().to_owned();
    let client = json_of(&authflow(&db).args(["client", "add", "--name", "Svc"]).output().unwrap());
    let client_id = client["client_id"].as_str().unwrap().to_owned();

    // A grant and an access token for alice, as a code exchange would have left them.
    let store = authflow_store::open(&db, &authflow_store::OpenOptions::default()).await.unwrap();
    let now = authflow_core::UnixTime::from_system_time(std::time::SystemTime::now());
    let seed = |grant_id: &str, token: &str| {
        let grant = Grant {
            id: grant_id.into(),
            client_id: client_id.clone(),
            subject: Some(alice.clone()),
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            revoked_at: None,
        };
        let access = AccessToken {
            token_hash: authflow_core::TokenHash::of(token),
            grant_id: Some(grant_id.into()),
            client_id: client_id.clone(),
            subject: Some(alice.clone()),
            scope: None,
            resources: vec![],
            issued_at: now,
            expires_at: now + Duration::from_secs(600),
        };
        (grant, access)
    };
    let (grant, access) = seed("g-1", "token-1");
    store.insert_grant(&grant).await.unwrap();
    store.insert_access_token(&access).await.unwrap();

    let disabled = json_of(&authflow(&db).args(["user", "disable", "alice"]).output().unwrap());
    assert_eq!(disabled["grants_revoked"], 1, "{disabled}");
    assert!(store.find_access_token(&access.token_hash, now).await.unwrap().is_none(), "token revoked");
    assert!(store.find_user(&alice).await.unwrap().unwrap().disabled);
    let listed = String::from_utf8_lossy(&authflow(&db).args(["user", "list"]).output().unwrap().stdout).to_string();
    assert!(listed.contains("\"disabled\":true"), "{listed}");

    json_of(&authflow(&db).args(["user", "enable", "alice"]).output().unwrap());
    assert!(!store.find_user(&alice).await.unwrap().unwrap().disabled);
    assert!(store.find_access_token(&access.token_hash, now).await.unwrap().is_none(), "enabling revives nothing");

    let (grant, access) = seed("g-2", "token-2");
    store.insert_grant(&grant).await.unwrap();
    store.insert_access_token(&access).await.unwrap();
    let removed = json_of(&authflow(&db).args(["user", "remove", "alice"]).output().unwrap());
    assert_eq!(removed["grants_revoked"], 1, "{removed}");
    assert!(store.find_access_token(&access.token_hash, now).await.unwrap().is_none(), "token revoked");
    assert!(store.find_user(&alice).await.unwrap().is_none());
    assert!(!authflow(&db).args(["user", "disable", "alice"]).output().unwrap().status.success(), "no such user");
}

#[test]
fn clients_are_validated_and_printed_once_with_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let public = json_of(
        &authflow(&db)
            .args([
                "client",
                "add",
                "--name",
                "Laptop",
                "--redirect-uri",
                "http://127.0.0.1:9000/cb",
                "--public",
                "--scope",
                "notes:read",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));

    let service = json_of(&authflow(&db).args(["client", "add", "--name", "Backend"]).output().unwrap());
    assert!(service["client_secret"].as_str().unwrap().starts_with("af_cs_"));
    assert_eq!(service["grant_types"], serde_json::json!(["client_credentials"]));

    for bad in [
        vec!["--redirect-uri", "http://evil.example/cb"],
        vec!["--redirect-uri", "https://a.example/cb#frag"],
        vec!["--redirect-uri", "javascript:alert(1)"],
        vec!["--grant", "authorization_code"],
        vec!["--public", "--grant", "client_credentials"],
        vec!["--scope", "a  b"],
        vec!["--resource", "not a uri"],
    ] {
        let out = authflow(&db).args(["client", "add", "--name", "Bad"]).args(&bad).output().unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
    }

    let listed = String::from_utf8_lossy(&authflow(&db).args(["client", "list"]).output().unwrap().stdout).to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!listed.contains("af_cs_"), "secrets are shown only when created");

    let id = service["client_id"].as_str().unwrap();
    assert!(authflow(&db).args(["client", "disable", id]).output().unwrap().status.success());
    assert!(authflow(&db).args(["client", "remove", id]).output().unwrap().status.success());
    assert!(!authflow(&db).args(["client", "remove", id]).output().unwrap().status.success());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `authflow serve`; killed on drop.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(db: &str, extra: &[&str]) -> (Serve, String) {
    let port = free_port();
    let mut child = authflow(db)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            return (Serve(child), base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start");
}

#[tokio::test]
async fn a_cli_created_client_gets_tokens_from_serve() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let created =
        json_of(&authflow(&db).args(["client", "add", "--name", "Svc", "--scope", "notes:read"]).output().unwrap());
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    let (_server, base) = serve(&db, &[]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "notes:read");
    let r = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn static_clients_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());
    let config = dir.path().join("authflow.toml");
    std::fs::write(
        &config,
        r#"
access_token_ttl_secs = 120
resources = ["https://mcp.example.com/mcp"]

[[clients]]
client_id = "backend"
client_secret = "a-very-long-static-secret-of-40-characters"
name = "Backend job"
scope = "notes:read"
"#,
    )
    .unwrap();
    let (_server, base) = serve(&db, &["--config", config.to_str().unwrap()]).await;
    let http = reqwest::Client::new();
    let form = [("grant_type", "client_credentials"), ("resource", "https://mcp.example.com/mcp")];
    let r = http
        .post(format!("{base}/token"))
        .basic_auth("backend", Some("a-very-long-static-secret-of-40-characters"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 120);
    // A resource outside the configured list is refused.
    let form = [("grant_type", "client_credentials"), ("resource", "https://other.example/mcp")];
    let r = http
        .post(format!("{base}/token"))
        .basic_auth("backend", Some("a-very-long-static-secret-of-40-characters"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
}

#[test]
fn keys_are_rotated_listed_and_sealed_with_the_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let kek = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    let key = |args: &[&str]| {
        let mut cmd = authflow(&db);
        cmd.env("AUTHFLOW_SIGNING_KEY_ENCRYPTION_KEY", kek).env("AUTHFLOW_ACCESS_TOKEN_TTL_SECS", "300");
        cmd.arg("key").args(args).output().unwrap()
    };
    let first = json_of(&key(&["rotate"]));
    assert_eq!(first["old_keys_published_for_secs"], 360, "by default the token lifetime plus the clock skew");
    let short = key(&["rotate", "--keep-published-secs", "120"]);
    assert!(!short.status.success(), "old keys may not be unpublished while their tokens live");
    assert!(String::from_utf8_lossy(&short.stderr).contains("shorter than"));
    let second = json_of(&key(&["rotate", "--overlap-secs", "0", "--keep-published-secs", "400"]));
    assert_ne!(first["kid"], second["kid"]);

    let listed = key(&["list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let keys: Vec<serde_json::Value> =
        String::from_utf8(listed.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(keys.len(), 2);
    let by_kid = |kid: &serde_json::Value| keys.iter().find(|k| k["kid"] == *kid).unwrap().clone();
    assert_eq!(by_kid(&second["kid"])["state"], "signing");
    assert_eq!(by_kid(&first["kid"])["state"], "published (no longer signing)", "retired by the second rotation");
    assert!(keys.iter().all(|k| k["sealed"] == true), "sealed with the configured key: {keys:?}");

    // A new key is of the deployment's algorithm.
    let mut eddsa = authflow(&db);
    eddsa.env("AUTHFLOW_SIGNING_KEY_ENCRYPTION_KEY", kek).env("AUTHFLOW_SIGNING_ALGORITHM", "EdDSA");
    let third = json_of(&eddsa.args(["key", "rotate"]).output().unwrap());
    let listed = String::from_utf8(key(&["list"]).stdout).unwrap();
    let third: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|k| k["kid"] == third["kid"])
        .unwrap();
    assert_eq!(third["alg"], "EdDSA", "{listed}");

    let mut bad = authflow(&db);
    bad.env("AUTHFLOW_SIGNING_KEY_ENCRYPTION_KEY", "too short").args(["key", "rotate"]);
    let out = bad.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("32 random bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
