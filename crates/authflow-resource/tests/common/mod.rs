//! Shared harness: a real authflow authorization server on loopback, fake servers, and an HTTP client.
#![allow(dead_code)]

pub mod fake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::SsrfPolicy;
use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind, UnixTime};
use authflow_resource::clock::Clock;
use authflow_resource::SafeHttpClient;
use authflow_server::{AuthServer, AuthServerBuilder, ManualClock, OsEntropy};
use authflow_store::{Client, ClientMetadata, ClientOrigin, MemoryStore, Store};
use axum::Router;
use serde_json::Value;

/// Where every test's clock starts.
pub const START: UnixTime = UnixTime::from_millis(1_800_000_000_000);

/// Serve `router` on a fresh loopback port; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    base
}

/// The authorization server's manual clock, read by the resource toolkit too, so both agree on time.
#[derive(Debug, Clone)]
pub struct SharedClock(pub ManualClock);

impl Clock for SharedClock {
    fn now(&self) -> UnixTime {
        authflow_server::Clock::now(&self.0)
    }
}

impl SharedClock {
    pub fn advance(&self, by: Duration) {
        self.0.advance(by)
    }
}

/// A client for loopback servers under the development SSRF policy.
pub fn dev_http() -> SafeHttpClient {
    SafeHttpClient::new(SsrfPolicy::development()).unwrap()
}

/// A running authflow authorization server on a memory store.
pub struct As {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub http: reqwest::Client,
}

impl As {
    pub async fn start() -> As {
        Self::start_with(|b| b).await
    }

    pub async fn start_with(configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder) -> As {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let clock = ManualClock::new(START);
        let builder = AuthServer::builder(base.parse().unwrap(), store.clone())
            .clock(Arc::new(clock.clone()))
            .scopes(vec!["notes:read".into(), "notes:write".into()]);
        let server = configure(builder).build().expect("server builds");
        let router = server.router();
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
        });
        As { base, store, clock: SharedClock(clock), http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Register a confidential client directly in storage; returns (id, secret).
    pub async fn add_client(
        &self,
        method: ClientAuthMethod,
        grants: &[GrantType],
        scope: &str,
        resources: &[&str],
    ) -> (String, String) {
        let id = format!("client-{}", &authflow_server::random_id()[..12]);
        let secret = SecretToken::generate(TokenKind::ClientSecret, UnixTime::EPOCH, &mut OsEntropy);
        let client = Client {
            client_id: id.clone(),
            secret_hash: Some(secret.hash()),
            registration_token_hash: None,
            metadata: ClientMetadata {
                client_name: Some(id.clone()),
                redirect_uris: vec![],
                grant_types: grants.to_vec(),
                token_endpoint_auth_method: method,
                scope: Some(Scope::parse(scope).unwrap()),
                resources: resources.iter().map(|s| s.to_string()).collect(),
                jwks: None,
                jwks_uri: None,
                extra: Default::default(),
            },
            origin: ClientOrigin::Admin,
            created_at: self.now(),
            expires_at: None,
            disabled: false,
        };
        self.store.insert_client(&client).await.unwrap();
        (id, secret.expose().to_owned())
    }

    /// A resource server allowed to introspect tokens for `resource`.
    pub async fn resource_server(&self, method: ClientAuthMethod, resource: &str) -> (String, String) {
        self.add_client(method, &[], "notes:read", &[resource]).await
    }

    /// A client_credentials client.
    pub async fn service_client(&self) -> (String, String) {
        self.add_client(
            ClientAuthMethod::ClientSecretBasic,
            &[GrantType::ClientCredentials],
            "notes:read notes:write",
            &[],
        )
        .await
    }

    /// A client_credentials access token for `resource` with `scope`.
    pub async fn token(&self, client: &(String, String), scope: &str, resource: &str) -> String {
        let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", resource)];
        let r =
            self.http.post(self.url("/token")).basic_auth(&client.0, Some(&client.1)).form(&form).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Revoke `token` as `client`.
    pub async fn revoke(&self, client: &(String, String), token: &str) {
        let r = self
            .http
            .post(self.url("/revoke"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// An HTTP answer read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// GET `url` with an optional bearer token.
pub async fn get(url: &str, token: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(req).await
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

/// A protected app with one route, `/whoami`, that answers with the verified token.
pub fn whoami_app(layer: authflow_resource::BearerAuthLayer) -> Router {
    use authflow_resource::VerifiedToken;
    use axum::routing::get;
    Router::new()
        .route(
            "/whoami",
            get(|t: VerifiedToken| async move {
                axum::Json(serde_json::json!({
                    "sub": t.subject,
                    "client_id": t.client_id,
                    "scope": t.scope.map(|s| s.to_string()),
                    "aud": t.audience,
                }))
            }),
        )
        .layer(layer)
}
