//! `authflow demo`: an authorization server and the notes MCP server it protects, in one process, ready
//! for an MCP client.
//!
//! State lives under the data directory (default `./authflow-demo`): the authorization server's SQLite
//! database, the notes database, and the demo user's credentials (`demo-user.json`, readable by the owner
//! only), so a restart keeps clients, tokens, notes and the password.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authflow_core::friction::FrictionConfig;
use authflow_core::ssrf::SsrfPolicy;
use authflow_core::{ClientAuthMethod, Entropy, GrantType, Scope, SecretToken, TokenKind};
use authflow_resource::{FrictionController, IntrospectionVerifier, ProtectedResource, SafeHttpClient};
use authflow_server::{random_id, AuthServer, Clock, OsEntropy, Policy, SystemClock};
use authflow_store::{Client, ClientMetadata, ClientOrigin, Store, User};
use clap::Args;
use notes_mcp::{NoteStore, NotesApp};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::CliResult;
use crate::config::DemoConfig;

/// The demo user's login name.
pub const DEMO_USERNAME: &str = "demo";
/// The client id the notes server introspects tokens with.
const NOTES_CLIENT_ID: &str = "notes-mcp";
/// Flags of `authflow demo`. Each is also a key of the file's `[demo]` section (flags and their
/// variables win over the file); `[friction]` in the file replaces the default friction control.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the authorization server listens (loopback; port 0 picks a free port) [default: 127.0.0.1:8000].
    #[arg(long, env = "AUTHFLOW_DEMO_LISTEN_AUTH", value_name = "ADDR")]
    pub listen_auth: Option<String>,
    /// Where the notes MCP server listens (loopback; port 0 picks a free port) [default: 127.0.0.1:8001].
    #[arg(long, env = "AUTHFLOW_DEMO_LISTEN_MCP", value_name = "ADDR")]
    pub listen_mcp: Option<String>,
    /// Directory for the databases and the demo user's credentials (created if missing) [default:
    /// authflow-demo].
    #[arg(long, env = "AUTHFLOW_DEMO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DemoArgs {
    /// The file's `[demo]` settings with the flags given applied over them.
    pub fn apply(self, mut config: DemoConfig) -> DemoConfig {
        if let Some(listen) = self.listen_auth {
            config.listen_auth = listen;
        }
        if let Some(listen) = self.listen_mcp {
            config.listen_mcp = listen;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        config
    }
}

/// The demo user's credentials as kept in the data directory.
#[derive(Debug, Serialize, Deserialize)]
struct DemoUser {
    username: String,
    password: String,
}

async fn bind(addr: &str, what: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if !local.ip().is_loopback() {
        // Plain http, a printed password and open registration are fine on one machine only.
        return Err(format!(
            "the demo listens on loopback only, not {local}; for a deployment run `authflow serve` and your own MCP server"
        ));
    }
    Ok((listener, local))
}

/// Run the demo until SIGINT/SIGTERM. Friction control uses `friction`, or
/// [`notes_mcp::default_friction`] when the file has no `[friction]` section.
pub async fn demo(config: DemoConfig, friction: Option<FrictionConfig>) -> CliResult {
    let friction = FrictionController::new(friction.unwrap_or_else(notes_mcp::default_friction))
        .map_err(|e| format!("invalid [friction] configuration: {e}"))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", config.data_dir.display()))?;
    let (auth_listener, auth_addr) = bind(&config.listen_auth, "authorization server").await?;
    let (mcp_listener, mcp_addr) = bind(&config.listen_mcp, "MCP server").await?;
    let issuer = format!("http://{auth_addr}");
    let mcp_url = format!("http://{mcp_addr}/mcp");

    let database = format!("sqlite://{}", config.data_dir.join("authflow.db").display());
    let store = authflow_store::open(&database, &authflow_store::OpenOptions { migrate: true, ..Default::default() })
        .await
        .map_err(|e| format!("cannot open {database}: {e}"))?;
    let (user, user_is_new) = ensure_demo_user(store.as_ref(), &config.data_dir).await?;
    let notes_secret = register_notes_server(store.as_ref(), &mcp_url).await?;

    let server = AuthServer::builder(issuer.parse()?, store.clone())
        .scopes(notes_mcp::SCOPES.map(String::from).to_vec())
        .policy(Policy { resources: vec![mcp_url.clone()], ..Policy::default() })
        .build()?;
    let _purger = server.spawn_purger(Duration::from_secs(300));

    // The notes server checks tokens the way any resource server would: by introspection over HTTP.
    let verifier = IntrospectionVerifier::builder(format!("{issuer}/introspect").parse()?, mcp_url.as_str())
        .client_secret_basic(NOTES_CLIENT_ID, notes_secret.expose())
        .issuer(issuer.as_str())
        .http_client(SafeHttpClient::new(SsrfPolicy::development())?)
        .build()?;
    let resource = ProtectedResource::new(&mcp_url)?
        .authorization_server(issuer.as_str())
        .scopes_supported(notes_mcp::SCOPES)
        .resource_name("Notes (authflow demo)");
    let notes_db = format!("sqlite://{}", config.data_dir.join("notes.db").display());
    let notes = NoteStore::open(&notes_db).await?;
    let shutdown = CancellationToken::new();
    let mcp_app =
        NotesApp::new(notes).shutdown_token(shutdown.clone()).friction(friction).protected(&resource, verifier)?;

    let stopped = crate::shutdown::listen()?;
    print_banner(&issuer, &mcp_url, &user, user_is_new, &config.data_dir);

    let auth_app = server.router().into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let auth = tokio::spawn(async move {
        axum::serve(crate::serve::no_delay(auth_listener), auth_app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let mcp_app = axum::ServiceExt::<axum::extract::Request>::into_make_service(mcp_app);
    let stop = shutdown.clone();
    let mcp = tokio::spawn(async move {
        axum::serve(crate::serve::no_delay(mcp_listener), mcp_app).with_graceful_shutdown(stop.cancelled_owned()).await
    });
    stopped.await;
    // Ends open MCP sessions and SSE streams too, so draining does not wait for idle clients.
    shutdown.cancel();
    let (a, m) = tokio::join!(auth, mcp);
    a??;
    m??;
    tracing::info!("authflow demo stopped");
    Ok(())
}

fn print_banner(issuer: &str, mcp_url: &str, user: &DemoUser, user_is_new: bool, data_dir: &Path) {
    let origin = if user_is_new { "created now" } else { "kept from an earlier run" };
    let friction = format!("{}/friction", mcp_url.trim_end_matches("/mcp"));
    // Written in one piece, and a closed stdout (`authflow demo | head`) is no reason to stop serving.
    let banner = format!(
        "\nauthflow demo is running.\n\n\
         \x20 MCP URL:              {mcp_url}\n\
         \x20 authorization server: {issuer}\n\
         \x20 username:             {username}\n\
         \x20 password:             {password}\n\
         \x20 ({origin}; saved in {creds})\n\n\
         Add the MCP URL to an MCP client; it signs you in through the browser. For example:\n\
         \x20 claude mcp add --transport http notes {mcp_url}\n\
         \x20 npx @modelcontextprotocol/inspector     (transport \"Streamable HTTP\", URL {mcp_url})\n\n\
         Tools: list_notes, get_note (notes:read); create_note, update_note, delete_note (notes:write).\n\
         Mutations are under friction control; GET {friction} (with the token) shows your levels.\n\
         State is kept in {dir}; delete it to start over. Ctrl-C stops.\n",
        username = user.username,
        password = user.password,
        creds = data_dir.join("demo-user.json").display(),
        dir = data_dir.display(),
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
}

/// A random password that survives copy and paste into a shell: 20 characters from 32 lower-case letters
/// and digits without look-alikes (100 bits), in groups of five.
fn generate_password() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";
    let mut bytes = [0u8; 20];
    OsEntropy.fill_bytes(&mut bytes);
    // 256 is a multiple of 32, so `% 32` is unbiased.
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    chars.chunks(5).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The demo user: created with a fresh password at the first start, kept on later ones. If the credentials
/// file was lost, the password is re-set and the file written again.
async fn ensure_demo_user(
    store: &dyn Store,
    dir: &Path,
) -> Result<(DemoUser, bool), Box<dyn std::error::Error + Send + Sync>> {
    let path = dir.join("demo-user.json");
    let saved: Option<DemoUser> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let existing = store.find_user_by_username(DEMO_USERNAME).await?;
    if let (Some(saved), Some(_)) = (&saved, &existing) {
        if saved.username == DEMO_USERNAME {
            return Ok((DemoUser { username: saved.username.clone(), password: saved.password.clone() }, false));
        }
    }
    let password = saved.filter(|s| s.username == DEMO_USERNAME).map(|s| s.password).unwrap_or_else(generate_password);
    let hash = {
        let password = password.clone();
        // argon2id is deliberately slow: keep it off the async workers.
        tokio::task::spawn_blocking(move || authflow_core::password::hash_password(&password, &mut OsEntropy)).await??
    };
    match existing {
        Some(mut user) => {
            user.password_hash = Some(hash);
            user.disabled = false;
            store.update_user(&user).await?;
        }
        None => {
            let user = User {
                id: random_id(),
                username: DEMO_USERNAME.to_owned(),
                password_hash: Some(hash),
                created_at: SystemClock.now(),
                disabled: false,
            };
            store.insert_user(&user).await?;
        }
    }
    let user = DemoUser { username: DEMO_USERNAME.to_owned(), password };
    write_private(&path, &serde_json::to_string_pretty(&user)?)?;
    Ok((user, true))
}

/// Write a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
}

/// The notes server's own client: it may introspect tokens for its resource and nothing else. Its secret
/// is drawn again at every start and lives only in this process.
async fn register_notes_server(
    store: &dyn Store,
    mcp_url: &str,
) -> Result<SecretToken, Box<dyn std::error::Error + Send + Sync>> {
    let secret = SecretToken::generate(TokenKind::ClientSecret, SystemClock.now(), &mut OsEntropy);
    let mut client = Client {
        client_id: NOTES_CLIENT_ID.to_owned(),
        secret_hash: Some(secret.hash()),
        registration_token_hash: None,
        metadata: ClientMetadata {
            client_name: Some("Notes MCP server (authflow demo)".to_owned()),
            redirect_uris: Vec::new(),
            // Introspection needs no grant: the server never obtains tokens itself.
            grant_types: Vec::<GrantType>::new(),
            token_endpoint_auth_method: ClientAuthMethod::ClientSecretBasic,
            scope: Some(Scope::parse(notes_mcp::READ_SCOPE)?),
            resources: vec![mcp_url.to_owned()],
            jwks: None,
            jwks_uri: None,
            extra: Default::default(),
        },
        origin: ClientOrigin::Static,
        created_at: SystemClock.now(),
        expires_at: None,
        disabled: false,
    };
    match store.find_client(NOTES_CLIENT_ID).await? {
        Some(existing) => {
            client.created_at = existing.created_at;
            store.update_client(&client).await?;
        }
        None => store.insert_client(&client).await?,
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use authflow_store::UserStore;

    #[test]
    fn passwords_are_long_and_random() {
        let a = generate_password();
        assert_eq!(a.len(), 23, "{a}");
        assert_eq!(a.matches('-').count(), 3);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit()), "shell-safe: {a}");
        assert_ne!(a, generate_password());
    }

    #[tokio::test]
    async fn the_demo_user_survives_restarts_and_a_lost_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = authflow_store::MemoryStore::new();
        let (first, new) = ensure_demo_user(&store, dir.path()).await.unwrap();
        assert!(new);
        let (again, new) = ensure_demo_user(&store, dir.path()).await.unwrap();
        assert!(!new);
        assert_eq!(again.password, first.password, "a restart keeps the password");
        assert_eq!(store.list_users().await.unwrap().len(), 1);

        std::fs::remove_file(dir.path().join("demo-user.json")).unwrap();
        let (reset, new) = ensure_demo_user(&store, dir.path()).await.unwrap();
        assert!(new);
        assert_ne!(reset.password, first.password, "a lost file means a new password");
        let hash = store.find_user_by_username(DEMO_USERNAME).await.unwrap().unwrap().password_hash.unwrap();
        assert!(authflow_core::password::verify_password(&reset.password, &hash).unwrap());
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    }
}
