//! The notes MCP server on its own, against an authorization server that is already running.
//!
//! ```sh
//! authflow serve &                                                        # http://127.0.0.1:8000
//! authflow client add --name notes-mcp --resource http://127.0.0.1:8001/mcp   # prints client_id, client_secret
//! NOTES_CLIENT_ID=… NOTES_CLIENT_SECRET=… cargo run -p notes-mcp
//! ```
//!
//! The client is the resource server's own identity: it lets the server introspect tokens issued for its
//! resource. (`authflow demo` does all of this in one process.)
//!
//! Environment: `AUTHFLOW_ISSUER` (default `http://127.0.0.1:8000`), `NOTES_LISTEN` (default
//! `127.0.0.1:8001`), `NOTES_RESOURCE` (default `http://<listen>/mcp`), `NOTES_DATABASE` (default
//! `sqlite://notes.db`), `NOTES_CLIENT_ID`, `NOTES_CLIENT_SECRET`. With `NOTES_BEHIND_GATEWAY=1` the server
//! checks no tokens and trusts the identity headers of an `authflow gateway` in front of it instead.

use authflow_core::ssrf::SsrfPolicy;
use authflow_resource::{IntrospectionVerifier, ProtectedResource, SafeHttpClient};
use notes_mcp::{NoteStore, NotesApp};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let listen = env("NOTES_LISTEN", "127.0.0.1:8001");
    let resource_url = env("NOTES_RESOURCE", &format!("http://{listen}/mcp"));
    let store = NoteStore::open(&env("NOTES_DATABASE", "sqlite://notes.db")).await?;
    // TCP_NODELAY: MCP messages are small request/response exchanges that Nagle's algorithm would delay.
    let listener = axum::serve::ListenerExt::tap_io(tokio::net::TcpListener::bind(&listen).await?, |tcp| {
        let _ = tcp.set_nodelay(true);
    });

    if std::env::var("NOTES_BEHIND_GATEWAY").is_ok_and(|v| v == "1") {
        let url = url::Url::parse(&resource_url)?;
        // The gateway sends the upstream's own host name (e.g. a container name) as `Host`.
        let app = NotesApp::new(store).allow_hosts(url.host_str()).behind_gateway(url.path())?;
        let path = url.path();
        tracing::warn!(
            "notes MCP server at http://{listen}{path} trusts X-Auth-* headers: expose it only to the gateway"
        );
        axum::serve(listener, app).await?;
        return Ok(());
    }

    let issuer = env("AUTHFLOW_ISSUER", "http://127.0.0.1:8000");
    let client_id = std::env::var("NOTES_CLIENT_ID").map_err(|_| "set NOTES_CLIENT_ID")?;
    let client_secret = std::env::var("NOTES_CLIENT_SECRET").map_err(|_| "set NOTES_CLIENT_SECRET")?;
    // Plain http and loopback are for local development only.
    let local = issuer.starts_with("http://127.0.0.1") || issuer.starts_with("http://localhost");
    let http = SafeHttpClient::new(if local { SsrfPolicy::development() } else { SsrfPolicy::strict() })?;
    let verifier = IntrospectionVerifier::builder(format!("{issuer}/introspect").parse()?, resource_url.as_str())
        .client_secret_basic(client_id, client_secret)
        .issuer(issuer.as_str())
        .http_client(http)
        .build()?;
    let resource = ProtectedResource::new(&resource_url)?
        .authorization_server(issuer.as_str())
        .scopes_supported(notes_mcp::SCOPES)
        .resource_name("Notes");
    let app = NotesApp::new(store).protected(&resource, verifier)?;
    tracing::info!("notes MCP server at {resource_url}; metadata at {}", resource.metadata_url());
    axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
    Ok(())
}
