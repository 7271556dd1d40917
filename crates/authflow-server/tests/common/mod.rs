//! Shared harness: a real `AuthServer` on a loopback port, over a chosen backend, with a manual clock.
#![allow(dead_code)]

pub mod browser;

use std::sync::Arc;
use std::time::Duration;

use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind, UnixTime};
use authflow_server::{AuthServer, AuthServerBuilder, ManualClock, OsEntropy};
use authflow_store::testsuite::Fixture;
use authflow_store::{Client, ClientMetadata, ClientOrigin, Store};
use serde_json::Value;

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

/// A running server. Dropping it stops the server and cleans the backend up.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    teardown: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// The clock every test starts at.
pub const START: UnixTime = UnixTime::from_millis(1_800_000_000_000);

impl TestServer {
    /// Start with the default configuration.
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |b| b).await
    }

    /// Start, letting the test adjust the builder.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(backend, listener, configure).await
    }

    /// Stop the server and clean up the backend (drops a PostgreSQL schema). Call at the end of each test.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        if let Some(t) = self.teardown.take() {
            t.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST a form; returns status, headers and JSON body (`Value::Null` if the body is empty or not JSON).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// Register a client directly in storage; returns its id and (for secret-based methods) its secret.
    pub async fn add_client(&self, spec: ClientSpec) -> (String, Option<String>) {
        let id = spec.id.clone().unwrap_or_else(|| format!("client-{}", &authflow_server::random_id()[..12]));
        let secret = spec
            .method
            .uses_secret()
            .then(|| SecretToken::generate(TokenKind::ClientSecret, UnixTime::EPOCH, &mut OsEntropy));
        let client = Client {
            client_id: id.clone(),
            secret_hash: secret.as_ref().map(SecretToken::hash),
            registration_token_hash: None,
            metadata: ClientMetadata {
                client_name: Some(spec.name.clone()),
                redirect_uris: spec.redirect_uris.clone(),
                grant_types: spec.grant_types.clone(),
                token_endpoint_auth_method: spec.method,
                scope: spec.scope.as_deref().map(|s| Scope::parse(s).unwrap()),
                resources: spec.resources.clone(),
                jwks: spec.jwks.clone(),
                jwks_uri: spec.jwks_uri.clone(),
                extra: Default::default(),
            },
            origin: ClientOrigin::Admin,
            created_at: self.clock_now(),
            expires_at: None,
            disabled: false,
        };
        self.store.insert_client(&client).await.unwrap();
        (id, secret.map(|s| s.expose().to_owned()))
    }

    pub fn clock_now(&self) -> UnixTime {
        use authflow_server::Clock;
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by)
    }
}

/// What a test client looks like.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub id: Option<String>,
    pub name: String,
    pub method: ClientAuthMethod,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub scope: Option<String>,
    pub resources: Vec<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
}

impl ClientSpec {
    /// A confidential client_credentials client authenticating with HTTP Basic.
    pub fn service() -> Self {
        ClientSpec {
            id: None,
            name: "Service".into(),
            method: ClientAuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: Some("notes:read notes:write".into()),
            resources: vec![],
            jwks: None,
            jwks_uri: None,
        }
    }

    /// A public authorization-code client (like an MCP client after dynamic registration).
    pub fn public_app() -> Self {
        ClientSpec {
            id: None,
            name: "Test MCP Client".into(),
            method: ClientAuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
            scope: Some("notes:read notes:write".into()),
            resources: vec![],
            jwks: None,
            jwks_uri: None,
        }
    }

    pub fn method(mut self, m: ClientAuthMethod) -> Self {
        self.method = m;
        self
    }

    pub fn grants(mut self, g: &[GrantType]) -> Self {
        self.grant_types = g.to_vec();
        self
    }

    pub fn resources(mut self, r: &[&str]) -> Self {
        self.resources = r.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn jwks(mut self, jwks: Value) -> Self {
        self.jwks = Some(jwks);
        self
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert an RFC 6749 error answer: status, code, `Cache-Control: no-store`, and no token in the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["error"], code, "unexpected error; body: {}", self.text);
        assert_eq!(self.header("cache-control"), Some("no-store"), "errors must not be cached");
        assert!(self.body.get("access_token").is_none() && self.body.get("refresh_token").is_none());
    }

    /// Assert a successful token response and return it.
    #[track_caller]
    pub fn assert_token(&self) -> &Value {
        assert_eq!(self.status, 200, "token request failed: {}", self.text);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.body["token_type"], "Bearer");
        let token = self.body["access_token"].as_str().unwrap();
        assert!(token.starts_with("af_at_") || token.split('.').count() == 3, "neither opaque nor a JWT: {token}");
        &self.body
    }
}

/// One `#[tokio::test]` per backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Memory).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Postgres).await } )* }
    };
}

impl TestServer {
    /// [`TestServer::start_with`] on a listener the test bound already, so it knows the server's address
    /// before it configures the builder (e.g. to register the server's callback at an upstream provider).
    pub async fn start_on(
        backend: Backend,
        listener: tokio::net::TcpListener,
        configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
    ) -> Self {
        let fixture: Fixture = match backend {
            Backend::Memory => Fixture::new(authflow_store::MemoryStore::new()),
            Backend::Sqlite => authflow_store::fixtures::sqlite().await,
            Backend::Postgres => authflow_store::fixtures::postgres().await,
        };
        Self::start_with_fixture(fixture, listener, configure).await
    }

    /// [`TestServer::start_on`] over storage the test set up itself (e.g. a SQLite file it also opens).
    pub async fn start_with_fixture(
        fixture: Fixture,
        listener: tokio::net::TcpListener,
        configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
    ) -> Self {
        let (store, teardown) = fixture.into_parts();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let clock = ManualClock::new(START);
        let builder = AuthServer::builder(base.parse().unwrap(), store.clone()).clock(Arc::new(clock.clone()));
        let router = configure(builder).build().expect("server builds").router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestServer { base, store, clock, http, server, teardown }
    }
}

/// One `#[tokio::test]` per embedded backend (memory, SQLite) for an `async fn(Backend)`: for tests whose
/// subject does not touch storage beyond what the full suite already covers on PostgreSQL.
#[macro_export]
macro_rules! on_memory_and_sqlite {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Memory).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )* }
    };
}
