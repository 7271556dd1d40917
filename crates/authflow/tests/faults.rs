//! Faults: a Redis or a PostgreSQL that goes away under a running `authflow serve` turns the endpoints that
//! need it into JSON 503 `temporarily_unavailable` with `Retry-After` (never a panic, never an open door),
//! `/ready` reports it, and everything recovers by itself when the service is back.
//!
//! Each test runs its own server — Debian's `redis-server`, or a PostgreSQL cluster made with `initdb` in a
//! temporary directory (as the `postgres` user when the tests run as root) — on a free port, so stopping it
//! disturbs no other test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server(port: u16) -> Process {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install Debian's redis-server package"));
    Process(child)
}

async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_is_a_503_and_its_return_is_noticed() {
    let redis_port = free_port();
    let mut redis = redis_server(redis_port);
    let http = reqwest::Client::new();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    wait_until("redis answering", async || std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()).await;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("authflow.db").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHFLOW_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    let _server = Process(
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &db, "--redis", &redis_url])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let ready = async || http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200);
    wait_until("the server ready", ready).await;

    let token = async || {
        let r = http.post(format!("{base}/token")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body["error"].as_str().unwrap_or_default().to_owned(), retry_after)
    };
    assert_eq!(token().await.0, 400, "with Redis up, the request reaches the endpoint (and lacks a client)");

    drop(redis);
    let (status, error, retry_after) = token().await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"), "the limit cannot be checked: refuse");
    assert!(retry_after.is_some(), "503 carries Retry-After");
    let not_ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503, "/ready says so");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("authflow_storage_unavailable_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no outage counter in:\n{metrics}"));
    assert!(refused >= 1, "the 503 is counted:\n{metrics}");

    redis = redis_server(redis_port);
    wait_until("the server ready again", ready).await;
    assert_eq!(token().await.0, 400, "recovered without a restart");
    drop(redis);
}

/// A throwaway PostgreSQL cluster in a temporary directory, run by Debian's binaries.
struct Postgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn create() -> Postgres {
        let versions = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin) are needed");
        let bin = versions.flatten().map(|v| v.path().join("bin")).find(|b| b.join("initdb").is_file()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL refuses to run as root: then its own user runs it.
        let as_postgres = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres {
            assert!(Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap().success());
        }
        let pg = Postgres { bin, dir, port: free_port(), as_postgres };
        let data = pg.dir.path().join("data");
        let status = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn ctl(&self, action: &str) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &options, "-m", "immediate", "-w", "-l"])
            .arg(self.dir.path().join("log"))
            .arg(action)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {action} failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_postgresql_is_a_503_and_its_return_is_noticed() {
    let pg = Postgres::create();
    pg.ctl("start");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHFLOW_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    let _server = Process(
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &pg.url()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let ready = async || http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200);
    wait_until("the server ready", ready).await;

    // An unknown public client: answering needs a client lookup in the database.
    let token = async || {
        let form = [("grant_type", "authorization_code"), ("client_id", "nobody"), ("code", "x")];
        let r = http.post(format!("{base}/token")).form(&form).send().await.unwrap();
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body["error"].as_str().unwrap_or_default().to_owned(), retry_after)
    };
    assert_eq!(token().await.0, 401, "with the database up: invalid_client");

    pg.ctl("stop");
    let (status, error, retry_after) = token().await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert_eq!(http.get(format!("{base}/ready")).send().await.unwrap().status(), 503);

    pg.ctl("start");
    wait_until("the server ready again", ready).await;
    wait_until("requests served again", async || token().await.0 == 401).await;
}
