//! The forwarding itself: headers in, headers out, bodies streamed both ways.

use std::time::Duration;

use authflow_resource::VerifiedToken;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use url::Url;

/// The token's subject (`sub`), when it has one.
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// The client the token was issued to.
pub const X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
/// The granted scopes, space-separated.
pub const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
/// Every identity header the gateway sets (and removes from client requests).
pub const IDENTITY_HEADERS: [HeaderName; 3] = [X_AUTH_SUBJECT, X_AUTH_CLIENT_ID, X_AUTH_SCOPES];

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones the proxy sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    pub(crate) http: reqwest::Client,
    pub(crate) upstream: Url,
    /// The resource's path without a trailing slash (empty for a root resource).
    pub(crate) resource_path: String,
    pub(crate) timeout: Duration,
}

fn problem(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response =
        (status, Json(serde_json::json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Remove hop-by-hop headers, including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The headers sent upstream: the client's end-to-end headers without its credentials, cookies or forged
/// identity headers, plus the identity the token proves.
pub(crate) fn upstream_headers(client: &HeaderMap, token: &VerifiedToken) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    // Never pass the token on (MCP authorization: token passthrough is forbidden). Cookies go too: on a
    // shared host they may belong to the authorization server's sign-in session.
    for name in [header::AUTHORIZATION, header::COOKIE, header::HOST] {
        headers.remove(name);
    }
    // Anything that looks like an identity header came from the client and is a forgery attempt.
    let forged: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().starts_with("x-auth-")).cloned().collect();
    for name in forged {
        headers.remove(name);
    }
    let mut set = |name: HeaderName, value: Option<String>| {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    };
    set(X_AUTH_SUBJECT, token.subject.clone());
    set(X_AUTH_CLIENT_ID, token.client_id.clone());
    set(X_AUTH_SCOPES, token.scope.as_ref().map(ToString::to_string));
    headers
}

/// Whether a path has a `.` or `..` segment, literally or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

impl Proxy {
    /// The upstream URL for a request URI under the resource path; `None` if it is not under it or
    /// tries to climb out of it.
    pub(crate) fn target(&self, uri: &Uri) -> Option<Url> {
        let path = uri.path();
        let rest = path.strip_prefix(&self.resource_path)?;
        if !(rest.is_empty() || rest.starts_with('/')) || has_dot_segment(path) || path.contains('\\') {
            return None;
        }
        let mut url = self.upstream.clone();
        if !rest.is_empty() {
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}{rest}"));
        }
        url.set_query(uri.query());
        Some(url)
    }

    /// Forward one request (behind the bearer layer, which put the [`VerifiedToken`] in its extensions).
    pub(crate) async fn forward(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Some(token) = VerifiedToken::of(&parts.extensions) else {
            tracing::error!("the gateway's proxy ran without a verified token");
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "not authenticated");
        };
        let Some(url) = self.target(&parts.uri) else {
            return problem(StatusCode::BAD_REQUEST, "invalid_request", "the path is not under the MCP endpoint");
        };
        let headers = upstream_headers(&parts.headers, token);
        // Streamed as it arrives: no buffering, no size limit beyond the upstream's own.
        let body = reqwest::Body::wrap_stream(body.into_data_stream());
        let send = self.http.request(parts.method.clone(), url).headers(headers).body(body).send();
        let upstream = match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                return problem(StatusCode::BAD_GATEWAY, "bad_gateway", "the MCP server could not be reached");
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "upstream did not answer in time");
                return problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    "the MCP server did not answer in time",
                );
            }
        };
        let status = upstream.status();
        let mut headers = upstream.headers().clone();
        strip_hop_by_hop(&mut headers);
        // Each chunk goes out as it comes in, so SSE events are not held back.
        let body = Body::from_stream(
            upstream.bytes_stream().inspect_err(|e| tracing::debug!(error = %e, "upstream body ended early")),
        );
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(upstream: &str, resource_path: &str) -> Proxy {
        Proxy {
            http: reqwest::Client::new(),
            upstream: upstream.parse().unwrap(),
            resource_path: resource_path.into(),
            timeout: Duration::from_secs(1),
        }
    }

    fn target(p: &Proxy, uri: &str) -> Option<String> {
        p.target(&uri.parse().unwrap()).map(|u| u.to_string())
    }

    #[test]
    fn paths_map_under_the_upstream_and_never_climb_out() {
        let p = proxy("http://127.0.0.1:3000/api/mcp", "/mcp");
        assert_eq!(target(&p, "/mcp").as_deref(), Some("http://127.0.0.1:3000/api/mcp"));
        assert_eq!(target(&p, "/mcp?x=1").as_deref(), Some("http://127.0.0.1:3000/api/mcp?x=1"));
        assert_eq!(target(&p, "/mcp/messages").as_deref(), Some("http://127.0.0.1:3000/api/mcp/messages"));
        assert_eq!(target(&p, "/mcpx"), None, "a prefix is not a parent");
        assert_eq!(target(&p, "/mcp/../admin"), None);
        assert_eq!(target(&p, "/mcp/%2E%2e/admin"), None);
        assert_eq!(target(&p, "/mcp/.%2e/admin"), None);
        assert_eq!(target(&p, "/other"), None);

        let root = proxy("http://127.0.0.1:3000/", "");
        assert_eq!(target(&root, "/").as_deref(), Some("http://127.0.0.1:3000/"));
        assert_eq!(target(&root, "/mcp").as_deref(), Some("http://127.0.0.1:3000/mcp"));
    }

    #[test]
    fn credentials_and_forged_identities_never_go_upstream() {
        let mut client = HeaderMap::new();
        client.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        client.insert(header::COOKIE, HeaderValue::from_static("session=1"));
        client.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-private"));
        client.insert("x-private", HeaderValue::from_static("hop"));
        client.insert("x-auth-subject", HeaderValue::from_static("admin"));
        client.insert("x-auth-roles", HeaderValue::from_static("root"));
        client.insert("mcp-session-id", HeaderValue::from_static("s1"));
        client.insert("last-event-id", HeaderValue::from_static("e7"));
        let token = VerifiedToken::new("alice").with_client_id("c1").with_scope("notes:read".parse().unwrap());
        let sent = upstream_headers(&client, &token);
        for gone in ["authorization", "cookie", "connection", "x-private", "x-auth-roles"] {
            assert!(!sent.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(sent["x-auth-subject"], "alice");
        assert_eq!(sent["x-auth-client-id"], "c1");
        assert_eq!(sent["x-auth-scopes"], "notes:read");
        assert_eq!(sent["mcp-session-id"], "s1");
        assert_eq!(sent["last-event-id"], "e7");

        let mut no_subject = VerifiedToken::new("svc");
        no_subject.subject = None;
        let sent = upstream_headers(&client, &no_subject);
        assert!(!sent.contains_key("x-auth-subject"), "a forged subject is not left behind");
    }
}
