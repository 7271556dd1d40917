//! [`RequestLogLayer`]: one `tracing` event per request that cannot leak a credential.
//!
//! It records the method, the *path* (never the query string, where tokens and codes travel), the status,
//! the latency, and — when a [`BearerAuthLayer`](crate::BearerAuthLayer) ran inside it — the outcome of
//! authentication with the token's subject and client id. It never reads a header, so `Authorization`,
//! `Cookie`, `Mcp-Session-Id` and the like cannot reach the logs through it. Events are emitted at `INFO`
//! under the target `authflow_resource::request`, inside a span carrying method and path, so logs from the
//! handler are grouped with them.
//!
//! ```
//! use axum::{routing::get, Router};
//! use authflow_resource::RequestLogLayer;
//!
//! let app: Router = Router::new().route("/mcp", get(|| async { "ok" })).layer(RequestLogLayer::new());
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::{AuthNote, NoteWanted};

/// Logs each request without credentials (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLogLayer {
    _private: (),
}

impl RequestLogLayer {
    /// The layer.
    pub fn new() -> Self {
        RequestLogLayer::default()
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;
    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner }
    }
}

/// The service [`RequestLogLayer`] wraps.
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        request.extensions_mut().insert(NoteWanted);
        let method = request.method().clone();
        // The path only: the query string may carry credentials.
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(target: "authflow_resource::request", "request", %method, %path);
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = future.await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let note = response.extensions().get::<AuthNote>();
                        let token = note.and_then(|n| n.token.as_deref());
                        tracing::info!(
                            target: "authflow_resource::request",
                            status,
                            latency_ms,
                            auth = note.map(|n| n.outcome),
                            subject = token.and_then(|t| t.subject.as_deref()),
                            client_id = token.and_then(|t| t.client_id.as_deref()),
                            "served"
                        );
                    }
                    Err(error) => {
                        tracing::warn!(target: "authflow_resource::request", latency_ms, %error, "failed");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
