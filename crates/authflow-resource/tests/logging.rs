//! Request logs never contain credentials. Alone in its test binary: `tracing` caches per-callsite
//! interest process-wide, so a thread-local subscriber only reliably sees events when no other test
//! touches the same callsites concurrently.

use std::io::Write;
use std::sync::{Arc, Mutex};

use authflow_resource::{
    ProtectedResource, RequestLogLayer, TokenVerifier, TrailingSlashLayer, VerifiedToken, VerifyError,
};
use axum::routing::get;
use axum::Router;
use tower::Layer;

const RESOURCE: &str = "https://mcp.example.com/mcp";

#[derive(Debug)]
struct Tokens;

#[async_trait::async_trait]
impl TokenVerifier for Tokens {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        match token {
            "write" => Ok(VerifiedToken::new("bob").with_scope("notes:read notes:write".parse().unwrap())),
            _ => Err(VerifyError::invalid("unknown token")),
        }
    }
}

fn app(resource: &ProtectedResource) -> Router {
    Router::new()
        .route("/mcp", get(|t: VerifiedToken| async move { format!("hello {}", t.principal().unwrap_or("?")) }))
        .layer(resource.bearer_auth(Tokens).require_scopes(["notes:read"]))
        .merge(resource.router())
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn request_logs_never_contain_credentials() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Driven in this task, on this thread, so the thread-local subscriber sees every event.
    let resource = ProtectedResource::new(RESOURCE).unwrap();
    let router = app(&resource).layer(RequestLogLayer::new());
    let service = TrailingSlashLayer::new().layer(router);

    use tower::ServiceExt;
    let secret_token = "write";
    let requests = [
        axum::http::Request::get("/mcp?access_token=sekrit-query-token&code=sekrit-code")
            .header("authorization", format!("Bearer {secret_token}"))
            .header("cookie", "session=sekrit-cookie")
            .body(axum::body::Body::empty())
            .unwrap(),
        axum::http::Request::get("/mcp/")
            .header("authorization", format!("Bearer {secret_token}"))
            .header("cookie", "session=sekrit-cookie")
            .header("mcp-session-id", "sekrit-session")
            .body(axum::body::Body::empty())
            .unwrap(),
        axum::http::Request::get("/mcp")
            .header("authorization", "Bearer sekrit-invalid-token")
            .body(axum::body::Body::empty())
            .unwrap(),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(service.clone().oneshot(request).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [400, 200, 401]);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in ["sekrit", "bearer write", "session=", "cookie", "authorization"] {
        assert!(!logs.to_lowercase().contains(secret), "{secret:?} leaked into the logs:\n{logs}");
    }
    assert!(logs.contains("path=/mcp") && logs.contains("status=200") && logs.contains("subject=\"bob\""), "{logs}");
    assert!(
        logs.contains("auth=\"malformed\"") && logs.contains("auth=\"invalid\"") && logs.contains("auth=\"ok\""),
        "{logs}"
    );
}
