//! `authflow user …`, `authflow client …` and `authflow key …`: administration straight against storage.

use std::io::Read;

use authflow_core::password::hash_password;
use authflow_core::validation::redirect_uri::{RedirectUri, RedirectUriPolicy};
use authflow_core::validation::resource::{ResourcePolicy, ResourceUri};
use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind};
use authflow_server::{random_id, Clock, OsEntropy, SystemClock};
use authflow_store::{Client, ClientMetadata, ClientOrigin, Store, StoreError, User};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::CliResult;

/// `authflow user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local user. The password is read from standard input (one line).
    Add {
        /// The login name.
        name: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user; every token they authorized is revoked first.
    Remove {
        /// The login name.
        name: String,
    },
    /// Stop a user from signing in, and revoke every token they authorized (access and refresh, for every
    /// client). Re-enabling does not bring the tokens back.
    Disable {
        /// The login name.
        name: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        /// The login name.
        name: String,
    },
}

/// `authflow client …`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its JSON, including the client secret (shown only once).
    Add(ClientAddArgs),
    /// List clients (static, admin-created and dynamically registered).
    List,
    /// Delete a client and everything issued to it.
    Remove {
        /// The client id.
        client_id: String,
    },
    /// Disable a client (it can no longer authenticate or obtain tokens) without deleting it.
    Disable {
        /// The client id.
        client_id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client id.
        client_id: String,
    },
}

/// Flags of `authflow client add`.
#[derive(Debug, Args)]
pub struct ClientAddArgs {
    /// Human-readable name shown on the consent page.
    #[arg(long)]
    pub name: String,
    /// Allowed redirect URI (repeat for several); compared exactly.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE protects its codes), e.g. a desktop or CLI MCP client.
    #[arg(long, conflicts_with = "auth_method")]
    pub public: bool,
    /// Token endpoint authentication for a confidential client.
    #[arg(long, value_name = "METHOD", value_parser = ["client_secret_basic", "client_secret_post"])]
    pub auth_method: Option<String>,
    /// Grant type (repeat for several) [default: authorization_code + refresh_token with redirect URIs,
    /// client_credentials without].
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    /// The most the client may ask for, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// A resource (MCP server URL) the client may get tokens for (repeat for several) [default: any].
    #[arg(long = "resource", value_name = "URI")]
    pub resources: Vec<String>,
    /// Use this client id instead of a generated one.
    #[arg(long)]
    pub client_id: Option<String>,
}

fn read_password() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let password = input.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&input);
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password.to_owned())
}

pub async fn user(store: &dyn Store, command: UserCommand) -> CliResult {
    match command {
        UserCommand::Add { name, .. } => {
            if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                return Err("a user name must be 1 to 256 printable characters".into());
            }
            let password = read_password()?;
            let user = User {
                id: random_id(),
                username: name.clone(),
                password_hash: Some(hash_password(&password, &mut OsEntropy)?),
                created_at: SystemClock.now(),
                disabled: false,
            };
            match store.insert_user(&user).await {
                Err(StoreError::Conflict(_)) => return Err(format!("user {name:?} already exists").into()),
                other => other?,
            }
            println!("{}", json!({ "sub": user.id, "username": user.username }));
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                println!("{}", json!({ "sub": u.id, "username": u.username, "disabled": u.disabled }));
            }
        }
        UserCommand::Remove { name } => {
            let user = find_user(store, &name).await?;
            // Tokens first: if deleting then fails, the user is locked out rather than left with live tokens.
            let revoked = store.revoke_grants_of_subject(&user.id, SystemClock.now()).await?;
            store.delete_user(&user.id).await?;
            println!("{}", json!({ "removed": name, "grants_revoked": revoked }));
        }
        UserCommand::Disable { name } => {
            let mut user = find_user(store, &name).await?;
            user.disabled = true;
            store.update_user(&user).await?;
            let revoked = store.revoke_grants_of_subject(&user.id, SystemClock.now()).await?;
            println!("{}", json!({ "disabled": name, "grants_revoked": revoked }));
        }
        UserCommand::Enable { name } => {
            let mut user = find_user(store, &name).await?;
            user.disabled = false;
            store.update_user(&user).await?;
            println!("{}", json!({ "enabled": name }));
        }
    }
    Ok(())
}

async fn find_user(store: &dyn Store, name: &str) -> Result<User, Box<dyn std::error::Error + Send + Sync>> {
    Ok(store.find_user_by_username(name).await?.ok_or_else(|| format!("no user {name:?}"))?)
}

/// Validate `client add` flags into a client record and its secret.
pub fn build_client(args: ClientAddArgs, origin: ClientOrigin) -> Result<(Client, Option<SecretToken>), String> {
    let method = match (args.public, args.auth_method.as_deref()) {
        (true, _) => ClientAuthMethod::None,
        (false, Some(m)) => m.parse().map_err(|_| format!("unknown auth method {m}"))?,
        (false, None) => ClientAuthMethod::ClientSecretBasic,
    };
    for uri in &args.redirect_uris {
        RedirectUri::parse(uri, &RedirectUriPolicy::default()).map_err(|e| format!("redirect URI {uri:?}: {e}"))?;
    }
    let grant_types: Vec<GrantType> = if args.grants.is_empty() {
        if args.redirect_uris.is_empty() {
            vec![GrantType::ClientCredentials]
        } else {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        }
    } else {
        args.grants
            .iter()
            .map(|g| g.parse().map_err(|_| format!("unknown grant type {g:?}")))
            .collect::<Result<_, _>>()?
    };
    if grant_types.contains(&GrantType::AuthorizationCode) && args.redirect_uris.is_empty() {
        return Err("the authorization_code grant needs at least one --redirect-uri".into());
    }
    if grant_types.contains(&GrantType::ClientCredentials) && method == ClientAuthMethod::None {
        return Err("a public client cannot use client_credentials".into());
    }
    let scope = args.scope.as_deref().map(Scope::parse).transpose().map_err(|e| format!("scope: {e}"))?;
    let resources = args
        .resources
        .iter()
        .map(|r| {
            ResourceUri::parse(r, &ResourcePolicy::default())
                .map(|r| r.canonical().to_owned())
                .map_err(|e| format!("resource {r:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client_id = args.client_id.unwrap_or_else(random_id);
    authflow_core::validation::client_id::ClientId::parse(&client_id).map_err(|e| format!("client id: {e}"))?;
    let now = SystemClock.now();
    let secret = method.uses_secret().then(|| SecretToken::generate(TokenKind::ClientSecret, now, &mut OsEntropy));
    let client = Client {
        client_id,
        secret_hash: secret.as_ref().map(SecretToken::hash),
        registration_token_hash: None,
        metadata: ClientMetadata {
            client_name: Some(args.name),
            redirect_uris: args.redirect_uris,
            grant_types,
            token_endpoint_auth_method: method,
            scope,
            resources,
            jwks: None,
            jwks_uri: None,
            extra: Default::default(),
        },
        origin,
        created_at: now,
        expires_at: None,
        disabled: false,
    };
    Ok((client, secret))
}

fn describe(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.metadata.client_name,
        "origin": c.origin.as_str(),
        "token_endpoint_auth_method": c.metadata.token_endpoint_auth_method.as_str(),
        "grant_types": c.metadata.grant_types,
        "redirect_uris": c.metadata.redirect_uris,
        "scope": c.metadata.scope.as_ref().map(ToString::to_string),
        "resources": c.metadata.resources,
        "disabled": c.disabled,
    })
}

pub async fn client(store: &dyn Store, command: ClientCommand) -> CliResult {
    match command {
        ClientCommand::Add(args) => {
            let (client, secret) = build_client(args, ClientOrigin::Admin)?;
            match store.insert_client(&client).await {
                Err(StoreError::Conflict(_)) => {
                    return Err(format!("client {:?} already exists", client.client_id).into())
                }
                other => other?,
            }
            let mut out = describe(&client);
            if let Some(secret) = secret {
                out["client_secret"] = json!(secret.expose());
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ClientCommand::List => {
            for c in store.list_clients().await? {
                println!("{}", describe(&c));
            }
        }
        ClientCommand::Remove { client_id } => {
            if !store.delete_client(&client_id).await? {
                return Err(format!("no client {client_id:?}").into());
            }
            println!("removed client {client_id:?} and everything issued to it");
        }
        ClientCommand::Disable { client_id } => set_disabled(store, &client_id, true).await?,
        ClientCommand::Enable { client_id } => set_disabled(store, &client_id, false).await?,
    }
    Ok(())
}

async fn set_disabled(store: &dyn Store, client_id: &str, disabled: bool) -> CliResult {
    let mut c = store.find_client(client_id).await?.ok_or_else(|| format!("no client {client_id:?}"))?;
    c.disabled = disabled;
    store.update_client(&c).await?;
    println!("client {client_id:?} {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Create or update a client declared in the configuration file.
pub async fn upsert_static_client(store: &dyn Store, sc: &crate::config::StaticClient) -> CliResult {
    let args = ClientAddArgs {
        name: if sc.name.is_empty() { sc.client_id.clone() } else { sc.name.clone() },
        redirect_uris: sc.redirect_uris.clone(),
        public: sc.public,
        auth_method: sc.auth_method.clone(),
        grants: sc.grant_types.clone(),
        scope: sc.scope.clone(),
        resources: sc.resources.clone(),
        client_id: Some(sc.client_id.clone()),
    };
    let (mut client, _) =
        build_client(args, ClientOrigin::Static).map_err(|e| format!("client {:?}: {e}", sc.client_id))?;
    let method = client.metadata.token_endpoint_auth_method;
    client.secret_hash = match (&sc.client_secret, method.uses_secret()) {
        (Some(secret), true) if secret.len() >= 32 => Some(authflow_core::TokenHash::of(secret)),
        (Some(_), true) => {
            return Err(format!("client {:?}: client_secret must be at least 32 characters", sc.client_id).into())
        }
        (None, true) => {
            return Err(format!("client {:?}: a confidential client needs client_secret", sc.client_id).into())
        }
        (Some(_), false) => {
            return Err(format!("client {:?}: a public client has no client_secret", sc.client_id).into())
        }
        (None, false) => None,
    };
    match store.find_client(&client.client_id).await? {
        Some(existing) => {
            client.created_at = existing.created_at;
            client.disabled = existing.disabled;
            store.update_client(&client).await?;
        }
        None => store.insert_client(&client).await?,
    }
    Ok(())
}

/// `authflow key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Rotate the signing key: the new key is published now and signs after the overlap; the current one
    /// stops signing then and stays published until the tokens it signed have expired.
    Rotate {
        /// Seconds between publishing the new key and signing with it: at least how long resource servers
        /// cache the JWKS (5 minutes) plus a replica's refresh (1 minute).
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        overlap_secs: u64,
        /// Seconds the old key stays published after it stops signing: at least the longest access or ID
        /// token lifetime plus the clock skew. Default: the configured `access_token_ttl_secs` (ID tokens
        /// live as long) plus 60.
        #[arg(long, value_name = "SECS")]
        keep_published_secs: Option<u64>,
    },
    /// List signing keys and their state.
    List,
}

/// Run a `key` subcommand.
///
/// `algorithm` is the deployment's `signing_algorithm` (a new key is of that kind). `token_lifetime` is the
/// configured access-token lifetime: tokens signed by a retiring key must still verify
/// until they expire, so by default the key stays published that long (plus the clock skew).
pub async fn key(
    store: std::sync::Arc<dyn Store>,
    encryption: Option<authflow_server::keys::KeyEncryptionKey>,
    token_lifetime: std::time::Duration,
    algorithm: authflow_core::jose::Algorithm,
    command: KeyCommand,
) -> CliResult {
    let ring = authflow_server::keys::KeyRing::new(store.clone(), algorithm).with_encryption(encryption);
    let now = SystemClock.now();
    match command {
        KeyCommand::Rotate { overlap_secs, keep_published_secs } => {
            let overlap = std::time::Duration::from_secs(overlap_secs);
            let least = token_lifetime + authflow_server::Policy::default().clock_skew;
            let keep = keep_published_secs.map_or(least, std::time::Duration::from_secs);
            if keep < least {
                return Err(format!(
                    "--keep-published-secs {} is shorter than the access-token lifetime plus clock skew ({} s): \
                     tokens the old key signed would stop verifying before they expire",
                    keep.as_secs(),
                    least.as_secs()
                )
                .into());
            }
            let kid = ring.rotate(now, overlap, keep).await?;
            println!(
                "{}",
                json!({ "kid": kid, "signs_from": (now + overlap).as_secs(), "old_keys_published_for_secs": keep.as_secs() })
            );
        }
        KeyCommand::List => {
            for k in store.list_signing_keys().await? {
                let state = if k.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else if k.retire_at.is_some_and(|r| r <= now) {
                    "published (no longer signing)"
                } else if k.not_before > now {
                    "published (signs later)"
                } else if k.retire_at.is_some() {
                    "signing (retiring)"
                } else {
                    "signing"
                };
                let line = json!({
                    "kid": k.kid,
                    "alg": k.alg,
                    "state": state,
                    "sealed": k.private_key.starts_with(b"afk1"),
                    "created_at": k.created_at.as_secs(),
                    "not_before": k.not_before.as_secs(),
                    "retire_at": k.retire_at.map(|t| t.as_secs()),
                    "expires_at": k.expires_at.map(|t| t.as_secs()),
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}
