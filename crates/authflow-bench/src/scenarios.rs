//! The scenarios: what one request of each looks like.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue, Method, Request};
use bytes::Bytes;
use http_body_util::Full;
use rmcp::model::ProtocolVersion;
use rmcp::transport::common::http_header::{HEADER_MCP_METHOD, HEADER_MCP_NAME, HEADER_MCP_PROTOCOL_VERSION};
use serde_json::json;

use crate::load::MakeRequest;
use crate::stack::{Stack, REDIRECT_URI, RESOURCE, TOOL};

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// `GET /health` on the authorization server: the same stack (body limit, request id, span, metrics)
    /// with no work behind it. The ceiling the others are compared with.
    Noop,
    /// `POST /introspect` of a live opaque token by an authenticated resource server.
    Introspect,
    /// `POST /token`, `grant_type=client_credentials`: authenticate, then write a token.
    ClientCredentials,
    /// `POST /token`, `grant_type=authorization_code` with PKCE, for pre-minted codes (public client;
    /// an access and a refresh token are written).
    AuthorizationCode,
    /// MCP `tools/call` of a one-tool rmcp server (streamable HTTP, stateless, JSON answer) through
    /// `BearerAuthLayer` + `IntrospectionVerifier`, token cached.
    ToolsCall,
    /// The same rmcp `tools/call` without the layer.
    ToolsCallOpen,
}

impl Scenario {
    /// Every scenario, the ceiling first.
    pub const ALL: [Scenario; 6] = [
        Scenario::Noop,
        Scenario::Introspect,
        Scenario::ClientCredentials,
        Scenario::AuthorizationCode,
        Scenario::ToolsCall,
        Scenario::ToolsCallOpen,
    ];

    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Noop => "noop (GET /health)",
            Scenario::Introspect => "introspect",
            Scenario::ClientCredentials => "token client_credentials",
            Scenario::AuthorizationCode => "token authorization_code",
            Scenario::ToolsCall => "rmcp tools/call + BearerAuthLayer",
            Scenario::ToolsCallOpen => "rmcp tools/call unprotected",
        }
    }
}

/// Where form requests of one scenario go, with the headers they all share built once: building a
/// request costs the client no more for a form scenario than for the no-op.
struct FormTarget {
    host: HeaderValue,
    path: String,
    authorization: Option<HeaderValue>,
}

impl FormTarget {
    fn new(addr: SocketAddr, path: String, authorization: Option<&str>) -> Self {
        FormTarget { host: header_value(&addr.to_string()), path, authorization: authorization.map(header_value) }
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        request.body(Full::new(body)).unwrap_or_else(|e| unreachable!("a constant request is valid: {e}"))
    }
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|e| unreachable!("addresses and credentials are header-safe: {e}"))
}

fn encode(pairs: &[(&str, &str)]) -> Bytes {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Bytes::from(s.finish())
}

/// The client_credentials request of [`Scenario::ClientCredentials`].
pub fn client_credentials(addr: SocketAddr, basic: &str) -> MakeRequest {
    let target = FormTarget::new(addr, "/token".to_owned(), Some(basic));
    let body = encode(&[("grant_type", "client_credentials"), ("scope", "notes:read"), ("resource", RESOURCE)]);
    Arc::new(move || Some(target.request(body.clone())))
}

/// `GET {base}/health`.
pub fn noop(addr: SocketAddr, base_path: &str) -> MakeRequest {
    let path = format!("{base_path}/health");
    let host = header_value(&addr.to_string());
    Arc::new(move || {
        Some(
            Request::builder()
                .uri(&path)
                .header(header::HOST, host.clone())
                .body(Full::new(Bytes::new()))
                .unwrap_or_else(|e| unreachable!("a constant request is valid: {e}")),
        )
    })
}

/// `POST {base}/introspect` as `IntrospectionVerifier` sends it.
pub fn introspect(addr: SocketAddr, base_path: &str, basic: &str, token: &str) -> MakeRequest {
    let target = FormTarget::new(addr, format!("{base_path}/introspect"), Some(basic));
    let body = encode(&[("token", token), ("token_type_hint", "access_token")]);
    Arc::new(move || Some(target.request(body.clone())))
}

/// `POST {path}` of a `tools/call` of [`TOOL`] as a client of the newest MCP revision rmcp knows sends it
/// without a session: the revision in the `MCP-Protocol-Version` header and in `_meta` with the client's
/// capabilities (which replace `initialize`), the method and tool name repeated in `Mcp-Method` and
/// `Mcp-Name` (SEP-2243), and an `Accept` of both JSON and SSE (rmcp refuses less). The token goes with
/// every request, to the open path too, so both send the same bytes but for the path.
fn tools_call(addr: SocketAddr, path: &'static str, access_token: &str) -> MakeRequest {
    let version = ProtocolVersion::LATEST;
    let bearer = header_value(&format!("Bearer {access_token}"));
    let version_header = header_value(version.as_str());
    let body = json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": TOOL,
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": version.as_str(),
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    let body = Bytes::from(body.to_string());
    let host = header_value(&addr.to_string());
    Arc::new(move || {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(HEADER_MCP_PROTOCOL_VERSION, version_header.clone())
            .header(HEADER_MCP_METHOD, "tools/call")
            .header(HEADER_MCP_NAME, TOOL)
            .header(header::AUTHORIZATION, bearer.clone())
            .body(Full::new(body.clone()));
        Some(request.unwrap_or_else(|e| unreachable!("a constant request is valid: {e}")))
    })
}

/// The request factory of `scenario` against the in-process `stack`.
pub fn against(stack: &Stack, scenario: Scenario) -> (SocketAddr, MakeRequest) {
    match scenario {
        Scenario::Noop => (stack.auth, noop(stack.auth, "")),
        Scenario::Introspect => (stack.auth, introspect(stack.auth, "", &stack.resource_basic, &stack.access_token)),
        Scenario::ClientCredentials => (stack.auth, client_credentials(stack.auth, &stack.service_basic)),
        Scenario::AuthorizationCode => {
            let (addr, codes) = (stack.auth, stack.codes.clone());
            let target = FormTarget::new(addr, "/token".to_owned(), None);
            let (client_id, verifier) = (stack.app_client_id.clone(), stack.code_verifier.clone());
            (
                addr,
                Arc::new(move || {
                    let code = codes.take()?;
                    let body = encode(&[
                        ("grant_type", "authorization_code"),
                        ("code", code),
                        ("redirect_uri", REDIRECT_URI),
                        ("code_verifier", &verifier),
                        ("client_id", &client_id),
                        ("resource", RESOURCE),
                    ]);
                    Some(target.request(body))
                }),
            )
        }
        Scenario::ToolsCall => (stack.resource, tools_call(stack.resource, "/mcp", &stack.access_token)),
        Scenario::ToolsCallOpen => (stack.resource, tools_call(stack.resource, "/open/mcp", &stack.access_token)),
    }
}
