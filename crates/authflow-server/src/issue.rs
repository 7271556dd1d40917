//! Minting tokens: the one place access and refresh tokens are created and stored.

use std::time::Duration;

use authflow_core::jose::{AccessTokenClaims, Audience, IdTokenClaims};
use authflow_core::{GrantType, OAuthError, Scope, SecretToken, TokenKind, UnixTime};
use authflow_store::{AccessToken, AuthorizationCode, Client, Grant, RefreshState, RefreshToken};
use serde::Serialize;

use crate::error::ApiError;
use crate::policy::AccessTokenFormat;
use crate::{AppState, OsEntropy};

/// The RFC 6749 §5.1 success response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// A refresh token, when the grant allows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The scope granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An OpenID Connect ID token, when the code flow was granted the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What a new access token is for.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// Whose it is.
    pub holder: Holder<'a>,
    /// Its scope.
    pub scope: Option<Scope>,
    /// Its audience.
    pub resources: Vec<String>,
}

/// Whose an access token is.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// A grant a user (or a device's user) gave: the token lives no longer than it, and dies with it.
    Grant(&'a Grant),
    /// A client acting for itself (client_credentials), by its id: the token is all it was granted and
    /// stands alone, revoked by itself.
    Client(&'a str),
}

impl Holder<'_> {
    fn client_id(&self) -> &str {
        match self {
            Holder::Grant(grant) => &grant.client_id,
            Holder::Client(client_id) => client_id,
        }
    }

    fn subject(&self) -> Option<&str> {
        match self {
            Holder::Grant(grant) => grant.subject.as_deref(),
            Holder::Client(_) => None,
        }
    }

    fn grant(&self) -> Option<&Grant> {
        match self {
            Holder::Grant(grant) => Some(grant),
            Holder::Client(_) => None,
        }
    }
}

/// A new, stored grant for `client_id`, living `ttl` (never longer than the policy's grant lifetime).
pub async fn new_grant(
    state: &AppState,
    client_id: &str,
    subject: Option<&str>,
    ttl: Duration,
) -> Result<Grant, ApiError> {
    let now = state.clock.now();
    let grant = Grant {
        id: authflow_core::token::grant_id(now, &mut OsEntropy),
        client_id: client_id.to_owned(),
        subject: subject.map(str::to_owned),
        created_at: now,
        expires_at: now + ttl.min(state.policy.grant_ttl),
        revoked_at: None,
    };
    state.store.insert_grant(&grant).await?;
    Ok(grant)
}

/// A new access token and its record (not yet stored).
async fn access_token(state: &AppState, req: &TokenRequest<'_>) -> Result<(SecretToken, AccessToken), ApiError> {
    let now = state.clock.now();
    let expires_at = match req.holder.grant() {
        Some(grant) => (now + state.policy.access_token_ttl).min(grant.expires_at),
        // No grant to cap it: the policy's longest grant still does, as the grant it once had did.
        None => now + state.policy.access_token_ttl.min(state.policy.grant_ttl),
    };
    let token = match state.policy.access_token_format {
        AccessTokenFormat::Opaque => SecretToken::generate(TokenKind::AccessToken, now, &mut OsEntropy),
        AccessTokenFormat::Jwt => SecretToken::from_presented(jwt_access_token(state, req, now, expires_at).await?),
    };
    let record = AccessToken {
        token_hash: token.hash(),
        grant_id: req.holder.grant().map(|grant| grant.id.clone()),
        client_id: req.holder.client_id().to_owned(),
        subject: req.holder.subject().map(str::to_owned),
        scope: req.scope.clone(),
        resources: req.resources.clone(),
        issued_at: now,
        expires_at,
    };
    Ok((token, record))
}

/// An RFC 9068 access token. Without a resource its audience is the issuer (usable at `/userinfo`).
async fn jwt_access_token(
    state: &AppState,
    req: &TokenRequest<'_>,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<String, ApiError> {
    let key = state.keys.signing_key(now).await?;
    let audience = match req.resources.as_slice() {
        [] => Audience::one(state.issuer_string()),
        [one] => Audience::one(one.clone()),
        many => Audience::many(many.iter().cloned()),
    };
    let client_id = req.holder.client_id();
    let subject = req.holder.subject().unwrap_or(client_id).to_owned();
    let mut claims = AccessTokenClaims::new(
        state.issuer_string(),
        subject,
        audience,
        client_id.to_owned(),
        now,
        now.saturating_until(expires_at),
        &mut OsEntropy,
    );
    if let Some(scope) = &req.scope {
        claims = claims.with_scope(scope);
    }
    claims.sign(&key).map_err(|e| ApiError::from(OAuthError::from(e)))
}

/// A refresh token and its record (not yet stored) for `grant`, if `client` may refresh (RFC 6749 §1.5).
pub fn refresh_token_if_allowed(
    state: &AppState,
    client: &Client,
    grant: &Grant,
    scope: Option<Scope>,
    resources: Vec<String>,
) -> Option<(SecretToken, RefreshToken)> {
    let allowed = client.metadata.grant_types.contains(&GrantType::RefreshToken);
    allowed.then(|| refresh_token(state, grant, scope, resources))
}

/// A refresh-token record (not yet stored) for `grant`, carrying the grant's full scope and resources.
pub fn refresh_token(
    state: &AppState,
    grant: &Grant,
    scope: Option<Scope>,
    resources: Vec<String>,
) -> (SecretToken, RefreshToken) {
    let now: UnixTime = state.clock.now();
    let token = SecretToken::generate(TokenKind::RefreshToken, now, &mut OsEntropy);
    let record = RefreshToken {
        token_hash: token.hash(),
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        subject: grant.subject.clone(),
        scope,
        resources,
        issued_at: now,
        expires_at: (now + state.policy.refresh_token_ttl).min(grant.expires_at),
        state: RefreshState::Active,
    };
    (token, record)
}

/// Issue an access token as a token response, with `refresh` (a new refresh token and its record) if given.
/// The two are written side by side, so that their commits overlap (on SQLite usually one group of the
/// writer; on PostgreSQL two connections at once) rather than one waiting for the other.
pub async fn respond(
    state: &AppState,
    req: TokenRequest<'_>,
    refresh: Option<(SecretToken, RefreshToken)>,
) -> Result<TokenResponse, ApiError> {
    let (refresh, record) = refresh.unzip();
    let store_refresh = async {
        if let Some(record) = &record {
            state.store.insert_refresh_token(record).await?;
        }
        Ok::<_, ApiError>(())
    };
    let (access, ()) = tokio::try_join!(store_access_token(state, &req), store_refresh)?;
    Ok(access.respond(req, refresh))
}

/// An access token minted and stored, not yet answered.
#[must_use = "a stored token nobody is given is a wasted write"]
pub struct Stored {
    access: SecretToken,
    record: AccessToken,
}

impl Stored {
    /// The token response for it, with `refresh` if given.
    pub fn respond(self, req: TokenRequest<'_>, refresh: Option<SecretToken>) -> TokenResponse {
        response(self.access, &self.record, req, refresh)
    }
}

/// Mint an access token for `req` and store it ([`respond`] in two steps, for a caller with work between).
pub async fn store_access_token(state: &AppState, req: &TokenRequest<'_>) -> Result<Stored, ApiError> {
    let (access, record) = access_token(state, req).await?;
    state.store.insert_access_token(&record).await?;
    Ok(Stored { access, record })
}

fn response(
    access: SecretToken,
    record: &AccessToken,
    req: TokenRequest<'_>,
    refresh: Option<SecretToken>,
) -> TokenResponse {
    let expires_in = record.issued_at.saturating_until(record.expires_at).as_secs();
    TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in,
        refresh_token: refresh.map(|r| r.expose().to_owned()),
        scope: req.scope.map(|s| s.to_string()),
        id_token: None,
    }
}

/// An OpenID Connect ID token for the user who approved `code`, bound to the access token sent with it.
pub async fn id_token(state: &AppState, code: &AuthorizationCode, access_token: &str) -> Result<String, ApiError> {
    let now = state.clock.now();
    let mut claims = IdTokenClaims::new(
        state.issuer_string(),
        code.subject.clone(),
        code.client_id.clone(),
        now,
        state.policy.access_token_ttl,
        code.auth_time,
    );
    claims.nonce = code.nonce.clone();
    if code.scope.as_ref().is_some_and(|s| s.contains("profile")) {
        claims.preferred_username = state.store.find_user(&code.subject).await?.map(|u| u.username);
    }
    let key = state.keys.signing_key(now).await?;
    claims.sign(Some(access_token), &key).map_err(|e| ApiError::from(OAuthError::from(e)))
}
