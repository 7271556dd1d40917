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

/// Verdicts awaited (`at_once: false`) or at hand, as from a warm cache (`true`): the layer takes a path of
/// its own for each, and both must leave the log its note.
#[derive(Debug)]
struct Tokens {
    at_once: bool,
}

fn verdict(token: &str) -> Result<VerifiedToken, VerifyError> {
    match token {
        "write" => Ok(VerifiedToken::new("bob").with_scope("notes:read notes:write".parse().unwrap())),
        _ => Err(VerifyError::invalid("unknown token")),
    }
}

#[async_trait::async_trait]
impl TokenVerifier for Tokens {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        verdict(token)
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        self.at_once.then(|| verdict(token).map(Arc::new))
    }
}

fn app(resource: &ProtectedResource, tokens: Tokens) -> Router {
    Router::new()
        .route("/mcp", get(|t: VerifiedToken| async move { format!("hello {}", t.principal().unwrap_or("?")) }))
        .layer(resource.bearer_auth(tokens).require_scopes(["notes:read"]))
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
    use tower::ServiceExt;
    let secret_token = "write";
    for at_once in [false, true] {
        let router = app(&resource, Tokens { at_once }).layer(RequestLogLayer::new());
        let service = TrailingSlashLayer::new().layer(router);
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
        assert_eq!(statuses, [400, 200, 401], "at once: {at_once}");
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in ["sekrit", "bearer write", "session=", "cookie", "authorization"] {
        assert!(!logs.to_lowercase().contains(secret), "{secret:?} leaked into the logs:\n{logs}");
    }
    assert!(logs.contains("path=/mcp") && logs.contains("status=200"), "{logs}");
    // The admitted request of each pass names its subject: the note reached the log both ways.
    assert_eq!(logs.matches("auth=\"ok\" subject=\"bob\"").count(), 2, "{logs}");
    assert!(
        logs.contains("auth=\"malformed\"") && logs.contains("auth=\"invalid\"") && logs.contains("auth=\"ok\""),
        "{logs}"
    );
}
