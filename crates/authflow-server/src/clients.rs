//! Finding the client a request names, and its keys.
//!
//! An opaque id is looked up in storage. An `https` URL is a client ID metadata document (MCP authorization,
//! 2025-11-25): the document is fetched through the SSRF-safe client (size-, time- and redirect-bounded,
//! cached as its caching headers allow), must name itself in `client_id`, and is validated like an RFC 7591
//! registration; a client row mirrors it so grants and tokens have a client to belong to, and an
//! administrator can disable it like any other.

use std::sync::Arc;
use std::time::Duration;

use authflow_core::jose::JwkSet;
use authflow_core::lru::ExpiringLru;
use authflow_core::validation::client_id::ClientId;
use authflow_core::{ClientAuthMethod, ErrorCode, OAuthError, UnixTime};
use authflow_store::{Client, ClientMetadata, ClientOrigin, StoreError};
use serde_json::Value;
use url::Url;

use crate::observe::AUDIT;
use crate::register::metadata;
use crate::remote::RemoteError;
use crate::AppState;

/// The largest client ID metadata document accepted: a client's description is small, and every byte of it
/// is fetched on behalf of an anonymous request.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// The largest `jwks_uri` document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Clients remembered at most by [`ClientCache`].
const CLIENT_CACHE_CAPACITY: usize = 10_000;

/// Clients recently read from storage, so a busy client (a resource server introspecting, a service
/// minting tokens) costs no storage read per request. Entries live [`Policy::client_cache_ttl`]
/// (crate::Policy::client_cache_ttl); this process's own changes evict them at once.
#[derive(Debug)]
pub(crate) struct ClientCache {
    ttl: Duration,
    /// Shared, so a hit that only looks at a client copies nothing.
    entries: ExpiringLru<String, Arc<Client>>,
}

impl ClientCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { CLIENT_CACHE_CAPACITY };
        ClientCache { ttl, entries: ExpiringLru::new(capacity) }
    }

    fn get(&self, id: &str, now: UnixTime) -> Option<Arc<Client>> {
        self.entries.get(id, now)
    }

    fn put(&self, client: &Arc<Client>, now: UnixTime) {
        self.entries.insert(client.client_id.clone(), client.clone(), now + self.ttl);
    }

    /// Forget `id` after changing or deleting it.
    pub(crate) fn forget(&self, id: &str) {
        self.entries.remove(id);
    }
}

/// Why the client could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The client's metadata document could not be fetched or is not acceptable.
    #[error("the client's metadata document cannot be used: {0}")]
    Document(String),
}

impl From<ClientError> for OAuthError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Store(e) => e.into(),
            ClientError::Document(why) => OAuthError::with_description(
                ErrorCode::InvalidClient,
                format!("the client's metadata document cannot be used: {why}"),
            ),
        }
    }
}

/// Parse a client id under the deployment's rules: plain-http document URLs on loopback only when the
/// outbound client allows plain http (a local test set-up; the builder refuses it for a public issuer).
pub(crate) fn parse_id(state: &AppState, id: &str) -> Option<ClientId> {
    let parsed = if state.remote.http().policy().allows_http() {
        ClientId::parse_for_local_testing(id)
    } else {
        ClientId::parse(id)
    };
    parsed.ok()
}

/// The client named `id`, if there is one. Disabled and expired clients are returned too: the caller says
/// what that means where it is.
pub(crate) async fn find(state: &AppState, id: &str) -> Result<Option<Arc<Client>>, ClientError> {
    let Some(parsed) = parse_id(state, id) else { return Ok(None) };
    let Some(url) = parsed.metadata_document_url() else {
        return Ok(stored(state, id).await?);
    };
    if !state.policy.client_id_metadata_documents {
        return Ok(None);
    }
    let stored = state.store.find_client(id).await?;
    if stored.as_ref().is_some_and(|c| c.origin != ClientOrigin::MetadataDocument) {
        // An operator's client that happens to have a URL for an id: theirs, not the document's.
        return Ok(stored.map(Arc::new));
    }
    let now = state.clock.now();
    let document = state
        .remote
        .get(&url, now, MAX_DOCUMENT_BYTES, false)
        .await
        .map_err(|e| ClientError::Document(describe(&e)))?;
    let metadata = from_document(state, id, &document).map_err(ClientError::Document)?;
    // Anyone can mint document URLs, so their rows must not pile up: a row lives a grant's lifetime past its
    // last use (nothing issued to it outlives that), and the purger removes it after.
    let expires_at = Some(now + state.policy.grant_ttl);
    let fresh_enough = |c: &Client| c.expires_at.is_some_and(|e| e > now + state.policy.grant_ttl / 2);
    match stored {
        Some(existing) if existing.metadata == metadata && fresh_enough(&existing) => Ok(Some(Arc::new(existing))),
        Some(existing) => {
            // Re-fetched: take the document's current metadata and push the expiry out; `disabled`, an
            // administrator's decision, is kept.
            let updated = Client { metadata, expires_at, ..existing };
            state.store.update_client(&updated).await?;
            Ok(Some(Arc::new(updated)))
        }
        None => {
            let client = Client {
                client_id: id.to_owned(),
                secret_hash: None,
                registration_token_hash: None,
                metadata,
                origin: ClientOrigin::MetadataDocument,
                created_at: now,
                expires_at,
                disabled: false,
            };
            match state.store.insert_client(&client).await {
                Ok(()) => {
                    tracing::info!(target: AUDIT, client_id = %client.client_id, "client metadata document accepted");
                    Ok(Some(Arc::new(client)))
                }
                // Another request stored it first: theirs is the same document.
                Err(StoreError::Conflict(_)) => Ok(state.store.find_client(id).await?.map(Arc::new)),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// An operator's or registered client, from the cache or storage. Unknown ids are not remembered: a client
/// registered on another replica is found at once.
/// The stored client `id` (through the cache), never fetching a metadata document.
pub(crate) async fn stored(state: &AppState, id: &str) -> Result<Option<Arc<Client>>, StoreError> {
    let now = state.clock.now();
    if let Some(client) = state.clients.get(id, now) {
        return Ok(Some(client));
    }
    let client = state.store.find_client(id).await?.map(Arc::new);
    if let Some(client) = &client {
        state.clients.put(client, now);
    }
    Ok(client)
}

fn describe(e: &RemoteError) -> String {
    match e {
        // The policy's reason names the address class, which helps the client's developer and is no secret.
        RemoteError::Fetch(f) => f.to_string(),
        other => other.to_string(),
    }
}

/// Validate a fetched document as client metadata for `id`.
fn from_document(
    state: &AppState,
    id: &str,
    document: &serde_json::Map<String, Value>,
) -> Result<ClientMetadata, String> {
    if document.get("client_id").and_then(Value::as_str) != Some(id) {
        return Err("its client_id is not the URL it was fetched from".into());
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if document.contains_key(secret) {
            return Err(format!("{secret} has no place in a public document"));
        }
    }
    let mut body = document.clone();
    // Nobody can share a secret with a document: unless it says otherwise, the client is public.
    body.entry("token_endpoint_auth_method").or_insert_with(|| Value::String("none".into()));
    let requested = metadata::validate(&Value::Object(body), &state.policy.redirect_uris, &state.known_scopes())
        .map_err(|e| e.description().to_owned())?;
    let m = requested.metadata;
    if !matches!(m.token_endpoint_auth_method, ClientAuthMethod::None | ClientAuthMethod::PrivateKeyJwt) {
        return Err("token_endpoint_auth_method must be none or private_key_jwt".into());
    }
    Ok(m)
}

/// The public keys a `private_key_jwt` client signs with: its inline `jwks`, or the set at its `jwks_uri`
/// (`refresh`: a new copy, for an assertion signed with a key the cached set lacks).
pub(crate) async fn keys(state: &AppState, client: &Client, refresh: bool) -> Result<Arc<JwkSet>, String> {
    if let Some(jwks) = &client.metadata.jwks {
        return JwkSet::from_value(jwks.clone()).map(Arc::new).map_err(|e| format!("the registered jwks: {e}"));
    }
    let Some(uri) = &client.metadata.jwks_uri else { return Err("the client has no public keys".into()) };
    let url = Url::parse(uri).map_err(|_| "jwks_uri is not a URL".to_owned())?;
    let document = state
        .remote
        .get(&url, state.clock.now(), MAX_JWKS_BYTES, refresh)
        .await
        .map_err(|e| format!("jwks_uri: {}", describe(&e)))?;
    JwkSet::from_value(Value::Object((*document).clone())).map(Arc::new).map_err(|e| format!("jwks_uri: {e}"))
}
