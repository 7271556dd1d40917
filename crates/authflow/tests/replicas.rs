//! Two replicas of `authflow serve` — two processes on two loopback ports, one issuer, one PostgreSQL
//! schema, one Redis — answer as one server: what one issues the other honours, a code is consumed once
//! across both, refresh-token reuse and assertion replay are caught across them, and rate limits are shared.
//!
//! Needs the real PostgreSQL (`AUTHFLOW_TEST_POSTGRES_URL`) and Redis (`AUTHFLOW_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`); fails, never skips, without them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::jose::{jws, Algorithm, PrivateKey};
use authflow_core::pkce::{CodeChallenge, CodeVerifier};
use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind, UnixTime};
use authflow_server::OsEntropy;
use authflow_store::postgres::PostgresStore;
use authflow_store::{AuthorizationCode, Client, ClientMetadata, ClientOrigin, Grant, Store};
use serde_json::{json, Value};

fn redis_url() -> String {
    std::env::var("AUTHFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `authflow serve` process; killed on drop.
struct Replica {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(dir: &std::path::Path, name: &str, issuer: &str, port: u16, database: &str) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AUTHFLOW_") || k == "DATABASE_URL" || k == "REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--issuer", issuer])
            .args(["--database", database, "--redis", &redis_url()])
            .env("AUTHFLOW_SCOPES", "notes:read notes:write")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let replica = Replica { child, base: format!("http://127.0.0.1:{port}"), log };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{}/ready", replica.base)).send().await.is_ok_and(|r| r.status() == 200) {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica {name} never became ready:\n{}", std::fs::read_to_string(&replica.log).unwrap_or_default());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The pair, their shared schema, and a handle on it for setting up clients and codes.
struct Cluster {
    a: Replica,
    b: Replica,
    issuer: String,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    teardown: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let (schema, options, teardown) = authflow_store::fixtures::fresh_schema().await;
        let base = authflow_store::fixtures::postgres_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let database = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = PostgresStore::connect_with(options.options([("search_path", schema.as_str())]), 2).await.unwrap();
        store.migrate().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (port_a, port_b) = (free_port(), free_port());
        // Behind a load balancer both replicas publish one issuer; here it is A's address.
        let issuer = format!("http://127.0.0.1:{port_a}");
        let (a, b) = tokio::join!(
            Replica::start(dir.path(), "a", &issuer, port_a, &database),
            Replica::start(dir.path(), "b", &issuer, port_b, &database),
        );
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Cluster { a, b, issuer, store: Arc::new(store), http, teardown: Some(Box::pin(teardown)), _dir: dir }
    }

    async fn add_client(
        &self,
        method: ClientAuthMethod,
        grants: &[GrantType],
        jwks: Option<Value>,
    ) -> (String, String) {
        let id = format!("client-{}", &authflow_server::random_id()[..12]);
        let secret = SecretToken::generate(TokenKind::ClientSecret, UnixTime::EPOCH, &mut OsEntropy);
        let client = Client {
            client_id: id.clone(),
            secret_hash: method.uses_secret().then(|| secret.hash()),
            registration_token_hash: None,
            metadata: ClientMetadata {
                client_name: Some("replica test".into()),
                redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
                grant_types: grants.to_vec(),
                token_endpoint_auth_method: method,
                scope: Some(Scope::parse("notes:read notes:write").unwrap()),
                resources: vec!["https://mcp.example/mcp".into()],
                jwks,
                jwks_uri: None,
                extra: Default::default(),
            },
            origin: ClientOrigin::Admin,
            created_at: UnixTime::from_system_time(std::time::SystemTime::now()),
            expires_at: None,
            disabled: false,
        };
        self.store.insert_client(&client).await.unwrap();
        (id, secret.expose().to_owned())
    }

    /// An authorization code for `client_id`, as the authorization endpoint would have stored it (the
    /// browser part is covered by the server's own tests); returns the code and its PKCE verifier.
    async fn mint_code(&self, client_id: &str) -> (String, CodeVerifier) {
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let user = self
            .store
            .insert_user(&authflow_store::User {
                id: format!("user-{client_id}"),
                username: format!("alice-{client_id}-{}", now.as_millis()),
                password_hash: None,
                created_at: now,
                disabled: false,
            })
            .await;
        // One user per client: the second code for the same client finds it there.
        assert!(matches!(user, Ok(()) | Err(authflow_store::StoreError::Conflict(_))), "{user:?}");
        let grant = Grant {
            id: authflow_core::token::grant_id(now, &mut OsEntropy),
            client_id: client_id.to_owned(),
            subject: Some(format!("user-{client_id}")),
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            revoked_at: None,
        };
        self.store.insert_grant(&grant).await.unwrap();
        let verifier = CodeVerifier::generate(&mut OsEntropy);
        let code = SecretToken::generate(TokenKind::AuthorizationCode, now, &mut OsEntropy);
        self.store
            .insert_code(&AuthorizationCode {
                code_hash: code.hash(),
                grant_id: grant.id,
                client_id: client_id.to_owned(),
                subject: format!("user-{client_id}"),
                redirect_uri: "http://127.0.0.1:33418/callback".into(),
                scope: Some(Scope::parse("notes:read").unwrap()),
                resources: vec!["https://mcp.example/mcp".into()],
                code_challenge: CodeChallenge::s256(&verifier).as_str().to_owned(),
                code_challenge_method: authflow_core::pkce::CodeChallengeMethod::S256,
                nonce: None,
                auth_time: now,
                issued_at: now,
                expires_at: now + Duration::from_secs(60),
            })
            .await
            .unwrap();
        (code.expose().to_owned(), verifier)
    }

    async fn post(
        &self,
        replica: &Replica,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut req = self.http.post(replica.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let reply = req.send().await.unwrap();
        let status = reply.status().as_u16();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn active(&self, replica: &Replica, introspector: &(String, String), token: &str) -> bool {
        let (status, body) =
            self.post(replica, "/introspect", &[("token", token)], Some((&introspector.0, &introspector.1))).await;
        assert_eq!(status, 200, "{body}");
        body["active"] == true
    }

    async fn stop(mut self) {
        // The servers name their keyspace after the issuer (see serve.rs): clean it up.
        let prefix = format!("authflow:{}:", self.issuer);
        let redis = authflow_store::redis::RedisShared::connect(&redis_url(), &prefix).await.unwrap();
        redis.delete_all().await.unwrap();
        if let Some(teardown) = self.teardown.take() {
            teardown.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_behave_as_one_server() {
    let c = Cluster::start().await;
    let introspector = c.add_client(ClientAuthMethod::ClientSecretBasic, &[GrantType::ClientCredentials], None).await;
    let service = c.add_client(ClientAuthMethod::ClientSecretBasic, &[GrantType::ClientCredentials], None).await;
    let app =
        c.add_client(ClientAuthMethod::None, &[GrantType::AuthorizationCode, GrantType::RefreshToken], None).await;

    // A token issued by A is active on B.
    let (status, body) = c
        .post(
            &c.a,
            "/token",
            &[("grant_type", "client_credentials"), ("resource", "https://mcp.example/mcp")],
            Some((&service.0, &service.1)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(c.active(&c.b, &introspector, body["access_token"].as_str().unwrap()).await, "issued on A, active on B");

    // One code, exchanged on both replicas at once: exactly one wins, and the replay revokes what it got.
    let (code, verifier) = c.mint_code(&app.0).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", app.0.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:33418/callback"),
        ("code_verifier", verifier.expose()),
    ];
    let (on_a, on_b) = tokio::join!(c.post(&c.a, "/token", &form, None), c.post(&c.b, "/token", &form, None));
    let replayed = |r: &(u16, Value)| r.0 == 400 && r.1["error_description"] == "authorization code already used";
    let (winner, loser) = match (replayed(&on_a), replayed(&on_b)) {
        (false, true) => (on_a, on_b),
        (true, false) => (on_b, on_a),
        _ => panic!("exactly one exchange is the replay: {on_a:?} / {on_b:?}"),
    };
    assert_eq!(loser.1["error"], "invalid_grant", "{loser:?}");
    // The replay revokes the grant. If that lands before the winner issues, the winner is refused too; if after,
    // what the winner got is dead. Either way nothing issued from a replayed code stays usable (RFC 9700 §4.2.4).
    match winner.0 {
        200 => {
            let won = winner.1["access_token"].as_str().unwrap();
            assert!(!c.active(&c.a, &introspector, won).await, "the replay revoked the winner's token");
            assert!(!c.active(&c.b, &introspector, won).await, "on both replicas");
        }
        _ => assert_eq!(
            (winner.0, winner.1["error_description"].as_str()),
            (400, Some("the authorization was revoked")),
            "the winner lost the race to the replay's revocation"
        ),
    }

    // A refresh token rotated on A and reused on B revokes the family.
    let (code, verifier) = c.mint_code(&app.0).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", app.0.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:33418/callback"),
        ("code_verifier", verifier.expose()),
    ];
    let (status, first) = c.post(&c.a, "/token", &form, None).await;
    assert_eq!(status, 200, "{first}");
    let old = first["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| {
        [("grant_type", "refresh_token"), ("client_id", app.0.as_str()), ("refresh_token", token)]
            .map(|(k, v)| (k, v.to_owned()))
    };
    let form: Vec<(&str, String)> = refresh(old).to_vec();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, rotated) = c.post(&c.a, "/token", &form, None).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, reused) = c.post(&c.b, "/token", &form, None).await;
    assert_eq!((status, reused["error"].as_str()), (400, Some("invalid_grant")), "reuse detected on B");
    let newer: Vec<(&str, String)> = refresh(rotated["refresh_token"].as_str().unwrap()).to_vec();
    let newer: Vec<(&str, &str)> = newer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = c.post(&c.a, "/token", &newer, None).await;
    assert_eq!(status, 400, "the whole family is revoked, on A too");

    // A client assertion accepted by A is a replay on B.
    let key = PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, Some("k1".into()));
    let jwks = json!({"keys": [key.public_jwk()]});
    let signer = c.add_client(ClientAuthMethod::PrivateKeyJwt, &[GrantType::ClientCredentials], Some(jwks)).await;
    let now = UnixTime::from_system_time(std::time::SystemTime::now()).as_secs();
    let claims = json!({"iss": signer.0, "sub": signer.0, "aud": format!("{}/token", c.issuer), "exp": now + 60, "iat": now, "jti": "replica-jti-1"});
    let assertion = jws::sign(None, &claims, &key).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(c.post(&c.a, "/token", &form, None).await.0, 200, "the assertion is accepted once");
    let (status, replayed) = c.post(&c.b, "/token", &form, None).await;
    assert_eq!((status, replayed["error"].as_str()), (401, Some("invalid_client")), "and refused on B");

    // The registration limit (100 per address per 10 minutes) is one budget across both.
    let body = json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
    let register = |replica: &Replica| c.http.post(replica.url("/register")).json(&body).send();
    for i in 0..100 {
        let replica = if i % 2 == 0 { &c.a } else { &c.b };
        assert_eq!(register(replica).await.unwrap().status(), 201, "registration {i} is within the limit");
    }
    for replica in [&c.a, &c.b] {
        let refused = register(replica).await.unwrap();
        assert_eq!(refused.status(), 429, "the 101st is refused on either replica");
        assert!(refused.headers().contains_key("retry-after"));
    }
    c.stop().await;
}

/// An `authflow gateway` process in front of `upstream`, sharing Redis with its sibling.
struct GatewayProcess {
    child: Child,
    base: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    async fn start(issuer: &str, upstream: &str, resource: &str, introspector: &(String, String)) -> GatewayProcess {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authflow"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AUTHFLOW_") || k == "REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream, "--issuer", issuer])
            .args(["--resource", resource, "--redis", &redis_url()])
            .args(["--introspection-client-id", &introspector.0, "--introspection-client-secret", &introspector.1])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let gateway = GatewayProcess { child, base: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", gateway.base);
        for _ in 0..300 {
            if http.get(&metadata).send().await.is_ok_and(|r| r.status() == 200) {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway on port {port} never answered");
    }
}

/// `authflow_introspections_total{active="true"}` of one authorization-server replica.
async fn active_introspections(http: &reqwest::Client, replica: &Replica) -> u64 {
    let text = http.get(replica.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("authflow_introspections_total{active=\"true\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no introspection counter in:\n{text}"))
}

/// Two gateway replicas with `--redis` in front of one MCP server: a token introspected through one is
/// not asked about again through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_replicas_share_introspection_verdicts() {
    let c = Cluster::start().await;
    let introspector = c.add_client(ClientAuthMethod::ClientSecretBasic, &[GrantType::ClientCredentials], None).await;
    let service = c.add_client(ClientAuthMethod::ClientSecretBasic, &[GrantType::ClientCredentials], None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/mcp", axum::routing::post(|| async { axum::Json(json!({"ok": true})) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The clients' resource; the gateways name their Redis keyspace after it (cleaned up below).
    let resource = "https://mcp.example/mcp";
    let (one, two) = tokio::join!(
        GatewayProcess::start(&c.issuer, &upstream, resource, &introspector),
        GatewayProcess::start(&c.issuer, &upstream, resource, &introspector),
    );

    let form = [("grant_type", "client_credentials"), ("resource", resource)];
    let (status, body) = c.post(&c.a, "/token", &form, Some((&service.0, &service.1))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let before = active_introspections(&c.http, &c.a).await + active_introspections(&c.http, &c.b).await;
    for gateway in [&one, &two, &one, &two] {
        let r = c.http.post(format!("{}/mcp", gateway.base)).bearer_auth(token).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200, "through {}", gateway.base);
    }
    let after = active_introspections(&c.http, &c.a).await + active_introspections(&c.http, &c.b).await;
    assert_eq!(after - before, 1, "four requests through two gateways, one introspection");
    drop((one, two));
    let prefix = format!("authflow-gateway:{resource}:");
    authflow_store::redis::RedisShared::connect(&redis_url(), &prefix).await.unwrap().delete_all().await.unwrap();
    c.stop().await;
}
