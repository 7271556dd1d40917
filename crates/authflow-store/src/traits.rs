//! The storage traits. A backend implements all of them; [`Store`] bundles them for `Arc<dyn Store>`.
//!
//! Every method that must be atomic says so, and the shared test suite (feature `test-suite`) checks it
//! under concurrency on every backend.

use async_trait::async_trait;
use authflow_core::device::DeviceGrant;
use authflow_core::ratelimit::{Decision, MemoryRateLimiter, RateLimit};
use authflow_core::{TokenHash, UnixTime};

use crate::model::*;
use crate::StoreError;

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Insert a new client; [`StoreError::Conflict`] if the id exists.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    /// Replace an existing client's record; `false` if there is none.
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    /// Find a client by id (disabled and expired ones too: the caller decides).
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    /// All clients, ordered by creation time then id.
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Delete a client and everything issued to it (grants, codes, tokens, device authorizations, consents
    /// given to it); `false` if there was none.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
}

/// Local users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a new user; [`StoreError::Conflict`] if the id or username exists.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// Replace an existing user's record; `false` if there is none.
    async fn update_user(&self, user: &User) -> StoreResult<bool>;
    /// Find a user by subject id.
    async fn find_user(&self, id: &str) -> StoreResult<Option<User>>;
    /// Find a user by login name (exact match).
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// All users, ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Delete a user and their login sessions and consents; `false` if there was none.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
}

/// Grants, authorization codes and tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Record a new grant; [`StoreError::Conflict`] if the id exists. Its client must exist.
    async fn insert_grant(&self, grant: &Grant) -> StoreResult<()>;
    /// Find a grant by id.
    async fn find_grant(&self, id: &str) -> StoreResult<Option<Grant>>;
    /// Revoke a grant and so every token issued from it; `false` if there is no such grant. Idempotent.
    async fn revoke_grant(&self, id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Revoke every grant `subject` authorized, and so every token issued from them (a user disabled or
    /// removed); the number of grants this call revoked. Idempotent.
    async fn revoke_grants_of_subject(&self, subject: &str, now: UnixTime) -> StoreResult<u64>;

    /// Store an authorization code. Its client must exist.
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Mark a code used, **atomically**: of any number of concurrent calls with one code exactly one gets
    /// [`CodeConsumption::Consumed`]; every later one gets [`CodeConsumption::Replayed`].
    async fn consume_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeConsumption>;

    /// Store an access token. Its client must exist, and its grant, if it has one.
    async fn insert_access_token(&self, token: &AccessToken) -> StoreResult<()>;
    /// Find a live access token: not expired at `now`, not revoked, its grant (if any) not revoked.
    async fn find_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<AccessToken>>;
    /// Revoke one access token; `false` if there was none.
    async fn revoke_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool>;

    /// Store a refresh token. Its grant and client must exist.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    /// Find a refresh token in any state (expiry is the caller's to check), so reuse can be detected.
    async fn find_refresh_token(&self, token_hash: &TokenHash) -> StoreResult<Option<RefreshToken>>;
    /// Rotate, **atomically**: mark `old` rotated and store `new` only if `old` is still active; of any number
    /// of concurrent rotations of one token exactly one returns `true`. `false` means it was already rotated
    /// or revoked (the caller treats that as reuse).
    async fn rotate_refresh_token(&self, old: &TokenHash, new: &RefreshToken, now: UnixTime) -> StoreResult<bool>;
    /// Revoke one refresh token; `false` if there was none.
    async fn revoke_refresh_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool>;
}

/// RFC 8628 device authorizations.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Store a new device authorization; [`StoreError::Conflict`] if its user code is taken (the caller draws
    /// another). Its client must exist.
    async fn insert_device_grant(&self, grant: &DeviceGrant) -> StoreResult<()>;
    /// Find by device-code hash.
    async fn find_device_grant(&self, device_code_hash: &TokenHash) -> StoreResult<Option<DeviceGrant>>;
    /// Find by normalised user code.
    async fn find_device_grant_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceGrant>>;
    /// Write `grant` back **only if** the stored revision still equals `grant.revision` (compare-and-set),
    /// storing it with `revision + 1`. `false` means someone else changed it first.
    async fn update_device_grant(&self, grant: &DeviceGrant) -> StoreResult<bool>;
}

/// JWT signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Store a key; [`StoreError::Conflict`] if the kid exists.
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    /// All keys, newest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Set a key's retirement times; `false` if there is no such key.
    async fn retire_signing_key(&self, kid: &str, retire_at: UnixTime, expires_at: UnixTime) -> StoreResult<bool>;
}

/// One-time-use markers, e.g. JWT `jti`s of client assertions (RFC 7523 §3).
#[async_trait]
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Remember `key` until `expires_at`, **atomically**: `true` the first time, `false` if it is already
    /// remembered and not yet expired.
    async fn remember_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool>;
}

/// Short-lived values that replicas share, by key: opaque bytes that always expire. The resource toolkit
/// keeps introspection verdicts and friction states in one, so replicas of an MCP server agree. Redis
/// implements it (feature `redis`); a single process needs none.
#[async_trait]
pub trait SharedMap: Send + Sync + std::fmt::Debug {
    /// The live value of `key`.
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Set `key` to `value` for `ttl` (at least a millisecond).
    async fn put(&self, key: &str, value: &[u8], ttl: std::time::Duration) -> StoreResult<()>;

    /// Forget `key` (nothing happens if it is unknown).
    async fn remove(&self, key: &str) -> StoreResult<()>;

    /// **Atomically** set `key` to `new` for `ttl` if its live value is still `expected` (`None`: absent).
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: std::time::Duration,
    ) -> StoreResult<Swap>;

    /// Up to `limit` live entries whose key starts with `prefix`, in no particular order.
    async fn scan(&self, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>>;
}

/// The outcome of [`SharedMap::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The new value is in place.
    Done,
    /// Somebody changed the value first; this is what is there now (`None`: absent), to decide again on.
    Conflict(Option<Vec<u8>>),
}

/// Rate-limit windows, by key. The in-process [`MemoryRateLimiter`] is the default; a shared one (Redis)
/// makes a limit hold across replicas.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Count a request for `key` under `limit` at `now`, atomically: the decision and the count it adds
    /// happen together, whoever else is counting.
    async fn check(&self, key: &str, limit: &RateLimit, now: UnixTime) -> StoreResult<Decision>;

    /// Whether the limiter's backend answers (for readiness checks).
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, limit: &RateLimit, now: UnixTime) -> StoreResult<Decision> {
        Ok(MemoryRateLimiter::check(self, key, limit, now))
    }
}

/// Browser sign-ins at the authorization endpoint.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Store a new session; [`StoreError::Conflict`] if its id hash exists. Its user must exist.
    async fn insert_session(&self, session: &LoginSession) -> StoreResult<()>;
    /// Find a live session: not expired at `now`. (Whether its user may still sign in is the caller's to
    /// check.)
    async fn find_session(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<LoginSession>>;
    /// End a session; `false` if there was none.
    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<bool>;
}

/// Remembered consents, one per user and client.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Remember a consent, replacing any earlier one of the same user for the same client. The user and
    /// the client must exist.
    async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// The live (not expired at `now`) consent of `user_id` for `client_id`.
    async fn find_consent(&self, user_id: &str, client_id: &str, now: UnixTime) -> StoreResult<Option<Consent>>;
    /// Forget a consent; `false` if there was none.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool>;
}

/// Everything authflow keeps.
#[async_trait]
pub trait Store:
    ClientStore
    + UserStore
    + TokenStore
    + DeviceStore
    + KeyStore
    + ReplayStore
    + SessionStore
    + ConsentStore
    + std::fmt::Debug
{
    /// The backend's name, for logs and `/ready`.
    fn backend(&self) -> &'static str;
    /// Check that the backend answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Delete what expired by `now` (`expires_at <= now`): codes, tokens, grants (no token outlives its
    /// grant), device authorizations, replay entries, login sessions, consents, clients given a lifetime
    /// (dynamic ones). What was issued from a deleted grant or client goes with it, as in
    /// [`ClientStore::delete_client`]; the report counts only rows that expired themselves. Safe to run on
    /// many replicas at once.
    async fn purge_expired(&self, now: UnixTime) -> StoreResult<PurgeReport>;
}
