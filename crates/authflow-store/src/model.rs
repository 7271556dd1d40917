//! The records storage keeps. Secrets appear only as [`TokenHash`]es.

use authflow_core::pkce::CodeChallengeMethod;
use authflow_core::{ClientAuthMethod, GrantType, Scope, TokenHash, UnixTime};
use serde::{Deserialize, Serialize};

/// How a client came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientOrigin {
    /// Declared in the configuration file.
    Static,
    /// Created by an administrator (`authflow client add`).
    Admin,
    /// Registered by the client itself (RFC 7591).
    Dynamic,
    /// Identified by the URL of its client ID metadata document, fetched and re-fetched by the server.
    MetadataDocument,
}

impl ClientOrigin {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientOrigin::Static => "static",
            ClientOrigin::Admin => "admin",
            ClientOrigin::Dynamic => "dynamic",
            ClientOrigin::MetadataDocument => "metadata_document",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [ClientOrigin::Static, ClientOrigin::Admin, ClientOrigin::Dynamic, ClientOrigin::MetadataDocument]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// RFC 7591 client metadata, as validated at registration. Stored as one JSON document so new fields need
/// no schema migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Human-readable name shown on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Registered redirect URIs, compared exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// How the client authenticates at the token endpoint.
    pub token_endpoint_auth_method: ClientAuthMethod,
    /// The most the client may ask for; `None` means the server's default scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// RFC 8707 resources the client may ask tokens for; empty means any resource the server serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Inline JWK Set for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where to fetch the JWK Set for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Other RFC 7591 fields (client_uri, logo_uri, contacts, software_id, …), kept as sent.
    #[serde(default, flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// SHA-256 of the client secret, for confidential clients using a secret.
    pub secret_hash: Option<TokenHash>,
    /// SHA-256 of the RFC 7592 registration access token.
    pub registration_token_hash: Option<TokenHash>,
    /// The metadata.
    pub metadata: ClientMetadata,
    /// How it came to exist.
    pub origin: ClientOrigin,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it stops being valid (dynamic clients may be given a lifetime).
    pub expires_at: Option<UnixTime>,
    /// An administrator disabled it.
    pub disabled: bool,
}

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The stable subject identifier (`sub`).
    pub id: String,
    /// The login name, unique.
    pub username: String,
    /// The argon2id PHC string; `None` for users who only sign in upstream.
    pub password_hash: Option<String>,
    /// When it was created.
    pub created_at: UnixTime,
    /// An administrator disabled it.
    pub disabled: bool,
}

/// One authorization: everything issued from one code exchange or one device approval shares a grant, so
/// revoking the grant revokes all of it (RFC 9700 §4.14 refresh-token reuse, §4.2.4 code replay). A
/// client_credentials token has none (see [`AccessToken::grant_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant id.
    pub id: String,
    /// The client it was given to.
    pub client_id: String,
    /// The user who authorized it, if any.
    pub subject: Option<String>,
    /// When it was created.
    pub created_at: UnixTime,
    /// Absolute end of the grant: no token issued from it lives longer.
    pub expires_at: UnixTime,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
}

/// An authorization code, bound to everything the token request must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub code_hash: TokenHash,
    /// The grant the code's tokens belong to (created with the code).
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved.
    pub subject: String,
    /// The redirect URI of the authorization request, exactly as sent.
    pub redirect_uri: String,
    /// The approved scope.
    pub scope: Option<Scope>,
    /// RFC 8707 resources the tokens will be bound to.
    pub resources: Vec<String>,
    /// The PKCE challenge.
    pub code_challenge: String,
    /// The PKCE method.
    pub code_challenge_method: CodeChallengeMethod,
    /// OpenID Connect nonce, if sent.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// When the code was issued.
    pub issued_at: UnixTime,
    /// When the code expires.
    pub expires_at: UnixTime,
}

/// The outcome of consuming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeConsumption {
    /// First use: the code is now spent. Expiry is the caller's to check.
    Consumed(AuthorizationCode),
    /// The code had been used before: a replay. The caller should revoke its grant.
    Replayed(AuthorizationCode),
    /// No such code.
    NotFound,
}

/// An issued access token (opaque or JWT; for a JWT the hash is of the compact serialisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// The grant it belongs to, whose revocation ends it. `None` for a token that stands alone: a client
    /// acting for itself (client_credentials) has no grant beyond the token, which is revoked by itself.
    pub grant_id: Option<String>,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it acts for, if any.
    pub subject: Option<String>,
    /// Its scope.
    pub scope: Option<Scope>,
    /// Its audience: RFC 8707 resources.
    pub resources: Vec<String>,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
}

/// Where a refresh token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    /// Usable once.
    Active,
    /// Already exchanged: presenting it again is reuse.
    Rotated,
    /// Revoked, directly or through its grant.
    Revoked,
}

/// An issued refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// The grant (token family) it belongs to.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it acts for, if any.
    pub subject: Option<String>,
    /// The scope it can ask for (refreshes may only narrow it).
    pub scope: Option<Scope>,
    /// The resources it can ask for.
    pub resources: Vec<String>,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Where it stands (computed by storage on read; ignored on insert).
    pub state: RefreshState,
}

/// A JWT signing key. The private key is opaque bytes to storage (encrypted by the caller when configured).
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm, e.g. `ES256` or `EdDSA`.
    pub alg: String,
    /// The private key material.
    pub private_key: Vec<u8>,
    /// The public key as a JWK, published in the JWKS.
    pub public_jwk: serde_json::Value,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it may start signing (lets every replica publish it first).
    pub not_before: UnixTime,
    /// When it stops signing.
    pub retire_at: Option<UnixTime>,
    /// When it stops being published (after every token it signed has expired).
    pub expires_at: Option<UnixTime>,
}

/// A browser's sign-in at the authorization endpoint. The session id travels only in the browser's cookie;
/// storage keeps its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    /// SHA-256 of the session id.
    pub id_hash: TokenHash,
    /// The user who signed in.
    pub user_id: String,
    /// When the user authenticated (OpenID Connect `auth_time`).
    pub auth_time: UnixTime,
    /// When the session was created.
    pub created_at: UnixTime,
    /// When it ends.
    pub expires_at: UnixTime,
}

/// A user's remembered consent for one client: later requests asking for no more than this skip the consent
/// page until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The user who consented.
    pub user_id: String,
    /// The client they consented to.
    pub client_id: String,
    /// The scope approved.
    pub scope: Option<Scope>,
    /// The RFC 8707 resources approved (empty: a token without an audience restriction was approved).
    pub resources: Vec<String>,
    /// When it was given.
    pub granted_at: UnixTime,
    /// When it stops being remembered.
    pub expires_at: UnixTime,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Authorization codes.
    pub codes: u64,
    /// Access tokens.
    pub access_tokens: u64,
    /// Refresh tokens.
    pub refresh_tokens: u64,
    /// Grants.
    pub grants: u64,
    /// Device authorizations.
    pub device_grants: u64,
    /// Replay-guard entries.
    pub replay_entries: u64,
    /// Expired dynamic clients.
    pub clients: u64,
    /// Login sessions.
    pub sessions: u64,
    /// Remembered consents.
    pub consents: u64,
}

impl PurgeReport {
    /// Everything removed.
    pub fn total(&self) -> u64 {
        self.codes
            + self.access_tokens
            + self.refresh_tokens
            + self.grants
            + self.device_grants
            + self.replay_entries
            + self.clients
            + self.sessions
            + self.consents
    }
}
