//! [`TrailingSlashLayer`]: `/mcp/` is `/mcp`. MCP clients are configured with URLs typed by people, and a
//! trailing slash should not turn into a 404 (or, worse, into a route outside the bearer-token layer).
//!
//! It rewrites the path before routing, so it must wrap the whole [`Router`](axum::Router), not be added
//! with `Router::layer` (which runs after routing):
//!
//! ```no_run
//! use axum::{extract::Request, routing::post, Router, ServiceExt};
//! use authflow_resource::TrailingSlashLayer;
//! use tower::Layer;
//!
//! # async fn run() -> std::io::Result<()> {
//! let router = Router::new().route("/mcp", post(|| async { "ok" }));
//! let app = TrailingSlashLayer::new().layer(router);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
//! # }
//! ```
//!
//! Every trailing slash is removed (`/mcp//` → `/mcp`); the root `/` stays; the query is kept.

use std::task::{Context, Poll};

use axum::http::uri::{PathAndQuery, Uri};
use axum::http::Request;
use tower::{Layer, Service};

/// Removes trailing slashes from request paths (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrailingSlashLayer {
    _private: (),
}

impl TrailingSlashLayer {
    /// The layer.
    pub fn new() -> Self {
        TrailingSlashLayer::default()
    }
}

impl<S> Layer<S> for TrailingSlashLayer {
    type Service = TrailingSlash<S>;
    fn layer(&self, inner: S) -> TrailingSlash<S> {
        TrailingSlash { inner }
    }
}

/// The service [`TrailingSlashLayer`] wraps.
#[derive(Debug, Clone)]
pub struct TrailingSlash<S> {
    inner: S,
}

/// `uri` without trailing slashes on its path, or `None` when there are none to remove.
pub(crate) fn trim(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() == path.len() || path == "/" {
        return None;
    }
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let pq = match uri.query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

impl<S, B> Service<Request<B>> for TrailingSlash<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        if let Some(uri) = trim(request.uri()) {
            *request.uri_mut() = uri;
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims() {
        let t = |s: &str| trim(&s.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(t("/mcp/"), Some("/mcp".into()));
        assert_eq!(t("/mcp//"), Some("/mcp".into()));
        assert_eq!(t("/a/b/?x=1/"), Some("/a/b?x=1/".into()));
        assert_eq!(t("http://h.example/mcp/?q"), Some("http://h.example/mcp?q".into()));
        assert_eq!(t("//"), Some("/".into()));
        assert_eq!(t("/"), None);
        assert_eq!(t("/mcp"), None);
        assert_eq!(t("/mcp?x=/"), None);
    }
}
