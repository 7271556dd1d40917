//! The in-memory backend: for tests, examples and single-process development. Nothing survives a restart.
//!
//! One lock guards all state, which makes every operation trivially atomic; it is the reference the SQL
//! backends are tested against.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use authflow_core::device::DeviceGrant;
use authflow_core::{TokenHash, UnixTime};

use crate::model::*;
use crate::traits::*;
use crate::StoreError;

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Client>,
    users: HashMap<String, User>,
    grants: HashMap<String, Grant>,
    codes: HashMap<TokenHash, (AuthorizationCode, Option<UnixTime>)>,
    access: HashMap<TokenHash, (AccessToken, Option<UnixTime>)>,
    refresh: HashMap<TokenHash, (RefreshToken, Option<UnixTime>, Option<UnixTime>)>,
    devices: HashMap<TokenHash, DeviceGrant>,
    keys: Vec<SigningKey>,
    replay: HashMap<String, UnixTime>,
    sessions: HashMap<TokenHash, LoginSession>,
    consents: HashMap<(String, String), Consent>,
}

impl Inner {
    fn grant_revoked(&self, grant_id: &str) -> bool {
        self.grants.get(grant_id).is_none_or(|g| g.revoked_at.is_some())
    }

    /// What the SQL backends' foreign keys enforce: what is issued to a client needs the client.
    fn require_client(&self, what: &str, client_id: &str) -> StoreResult<()> {
        if !self.clients.contains_key(client_id) {
            return Err(StoreError::Corrupt(format!("{what} for unknown client {client_id}")));
        }
        Ok(())
    }

    /// …and a token needs its grant (and client).
    fn require_grant(&self, what: &str, grant_id: &str, client_id: &str) -> StoreResult<()> {
        if !self.grants.contains_key(grant_id) {
            return Err(StoreError::Corrupt(format!("{what} for unknown grant {grant_id}")));
        }
        self.require_client(what, client_id)
    }

    /// What the SQL backends' foreign keys enforce for a user's sessions and consents.
    fn require_user(&self, what: &str, user_id: &str) -> StoreResult<()> {
        if !self.users.contains_key(user_id) {
            return Err(StoreError::Corrupt(format!("{what} for unknown user {user_id}")));
        }
        Ok(())
    }

    /// Remove what was issued from clients, grants and users that no longer exist, as the SQL backends'
    /// cascades do.
    fn cascade(&mut self) {
        let Inner { clients, users, grants, codes, access, refresh, devices, sessions, consents, .. } = self;
        grants.retain(|_, g| clients.contains_key(&g.client_id));
        codes.retain(|_, (c, _)| clients.contains_key(&c.client_id));
        access.retain(|_, (t, _)| {
            clients.contains_key(&t.client_id) && t.grant_id.as_ref().is_none_or(|g| grants.contains_key(g))
        });
        refresh.retain(|_, (t, _, _)| clients.contains_key(&t.client_id) && grants.contains_key(&t.grant_id));
        devices.retain(|_, d| clients.contains_key(&d.client_id));
        sessions.retain(|_, s| users.contains_key(&s.user_id));
        consents.retain(|_, c| users.contains_key(&c.user_id) && clients.contains_key(&c.client_id));
    }
}

/// Storage in process memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change (every method mutates after its
        // checks), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let mut s = self.lock();
        if s.clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict("client"));
        }
        s.clients.insert(client.client_id.clone(), client.clone());
        Ok(())
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let mut s = self.lock();
        Ok(s.clients.get_mut(&client.client_id).map(|c| *c = client.clone()).is_some())
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        Ok(self.lock().clients.get(client_id).cloned())
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let mut all: Vec<Client> = self.lock().clients.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(all)
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut s = self.lock();
        if s.clients.remove(client_id).is_none() {
            return Ok(false);
        }
        s.cascade();
        Ok(true)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut s = self.lock();
        if s.users.contains_key(&user.id) || s.users.values().any(|u| u.username == user.username) {
            return Err(StoreError::Conflict("user"));
        }
        s.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn update_user(&self, user: &User) -> StoreResult<bool> {
        let mut s = self.lock();
        if s.users.values().any(|u| u.username == user.username && u.id != user.id) {
            return Err(StoreError::Conflict("user"));
        }
        Ok(s.users.get_mut(&user.id).map(|u| *u = user.clone()).is_some())
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.lock().users.get(id).cloned())
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(self.lock().users.values().find(|u| u.username == username).cloned())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let mut all: Vec<User> = self.lock().users.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(all)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut s = self.lock();
        if s.users.remove(id).is_none() {
            return Ok(false);
        }
        s.cascade();
        Ok(true)
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert_grant(&self, grant: &Grant) -> StoreResult<()> {
        let mut s = self.lock();
        if s.grants.contains_key(&grant.id) {
            return Err(StoreError::Conflict("grant"));
        }
        s.require_client("grant", &grant.client_id)?;
        s.grants.insert(grant.id.clone(), grant.clone());
        Ok(())
    }

    async fn find_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        Ok(self.lock().grants.get(id).cloned())
    }

    async fn revoke_grant(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        Ok(s.grants.get_mut(id).map(|g| g.revoked_at = g.revoked_at.or(Some(now))).is_some())
    }

    async fn revoke_grants_of_subject(&self, subject: &str, now: UnixTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let mut revoked = 0;
        for g in s.grants.values_mut().filter(|g| g.subject.as_deref() == Some(subject) && g.revoked_at.is_none()) {
            g.revoked_at = Some(now);
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let mut s = self.lock();
        if s.codes.contains_key(&code.code_hash) {
            return Err(StoreError::Conflict("authorization code"));
        }
        s.require_client("authorization code", &code.client_id)?;
        s.codes.insert(code.code_hash, (code.clone(), None));
        Ok(())
    }

    async fn consume_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeConsumption> {
        let mut s = self.lock();
        Ok(match s.codes.get_mut(code_hash) {
            None => CodeConsumption::NotFound,
            Some((code, used @ None)) => {
                *used = Some(now);
                CodeConsumption::Consumed(code.clone())
            }
            Some((code, Some(_))) => CodeConsumption::Replayed(code.clone()),
        })
    }

    async fn insert_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let mut s = self.lock();
        match &token.grant_id {
            Some(grant_id) => s.require_grant("access token", grant_id, &token.client_id)?,
            None => s.require_client("access token", &token.client_id)?,
        }
        if s.access.contains_key(&token.token_hash) {
            return Err(StoreError::Conflict("access token"));
        }
        s.access.insert(token.token_hash, (token.clone(), None));
        Ok(())
    }

    async fn find_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<AccessToken>> {
        let s = self.lock();
        Ok(s.access
            .get(token_hash)
            .filter(|(t, revoked)| {
                revoked.is_none() && t.expires_at > now && t.grant_id.as_deref().is_none_or(|g| !s.grant_revoked(g))
            })
            .map(|(t, _)| t.clone()))
    }

    async fn revoke_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        Ok(s.access.get_mut(token_hash).map(|(_, r)| *r = r.or(Some(now))).is_some())
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let mut s = self.lock();
        s.require_grant("refresh token", &token.grant_id, &token.client_id)?;
        if s.refresh.contains_key(&token.token_hash) {
            return Err(StoreError::Conflict("refresh token"));
        }
        s.refresh.insert(token.token_hash, (token.clone(), None, None));
        Ok(())
    }

    async fn find_refresh_token(&self, token_hash: &TokenHash) -> StoreResult<Option<RefreshToken>> {
        let s = self.lock();
        Ok(s.refresh.get(token_hash).map(|(t, rotated, revoked)| {
            let state = if revoked.is_some() || s.grant_revoked(&t.grant_id) {
                RefreshState::Revoked
            } else if rotated.is_some() {
                RefreshState::Rotated
            } else {
                RefreshState::Active
            };
            RefreshToken { state, ..t.clone() }
        }))
    }

    async fn rotate_refresh_token(&self, old: &TokenHash, new: &RefreshToken, now: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        let grant_revoked = match s.refresh.get(old) {
            Some((t, None, None)) => s.grant_revoked(&t.grant_id),
            _ => return Ok(false),
        };
        if grant_revoked {
            return Ok(false);
        }
        if s.refresh.contains_key(&new.token_hash) {
            return Err(StoreError::Conflict("refresh token"));
        }
        s.require_grant("refresh token", &new.grant_id, &new.client_id)?;
        if let Some((_, rotated, _)) = s.refresh.get_mut(old) {
            *rotated = Some(now);
        }
        s.refresh.insert(new.token_hash, (new.clone(), None, None));
        Ok(true)
    }

    async fn revoke_refresh_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        Ok(s.refresh.get_mut(token_hash).map(|(_, _, r)| *r = r.or(Some(now))).is_some())
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device_grant(&self, grant: &DeviceGrant) -> StoreResult<()> {
        let mut s = self.lock();
        if s.devices.contains_key(&grant.device_code_hash) || s.devices.values().any(|d| d.user_code == grant.user_code)
        {
            return Err(StoreError::Conflict("user code"));
        }
        s.require_client("device authorization", &grant.client_id)?;
        s.devices.insert(grant.device_code_hash, grant.clone());
        Ok(())
    }

    async fn find_device_grant(&self, device_code_hash: &TokenHash) -> StoreResult<Option<DeviceGrant>> {
        Ok(self.lock().devices.get(device_code_hash).cloned())
    }

    async fn find_device_grant_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceGrant>> {
        Ok(self.lock().devices.values().find(|d| d.user_code == user_code).cloned())
    }

    async fn update_device_grant(&self, grant: &DeviceGrant) -> StoreResult<bool> {
        let mut s = self.lock();
        match s.devices.get_mut(&grant.device_code_hash) {
            Some(stored) if stored.revision == grant.revision => {
                *stored = DeviceGrant { revision: grant.revision + 1, ..grant.clone() };
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        let mut s = self.lock();
        if s.keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict("signing key"));
        }
        s.keys.push(key.clone());
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let mut keys = self.lock().keys.clone();
        keys.sort_by(|a, b| (b.created_at, &b.kid).cmp(&(a.created_at, &a.kid)));
        Ok(keys)
    }

    async fn retire_signing_key(&self, kid: &str, retire_at: UnixTime, expires_at: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        Ok(s.keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .map(|k| {
                k.retire_at = Some(retire_at);
                k.expires_at = Some(expires_at);
            })
            .is_some())
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn remember_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let mut s = self.lock();
        match s.replay.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                s.replay.insert(key.to_owned(), expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &LoginSession) -> StoreResult<()> {
        let mut s = self.lock();
        if s.sessions.contains_key(&session.id_hash) {
            return Err(StoreError::Conflict("login session"));
        }
        s.require_user("login session", &session.user_id)?;
        s.sessions.insert(session.id_hash, session.clone());
        Ok(())
    }

    async fn find_session(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<LoginSession>> {
        Ok(self.lock().sessions.get(id_hash).filter(|s| s.expires_at > now).cloned())
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<bool> {
        Ok(self.lock().sessions.remove(id_hash).is_some())
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()> {
        let mut s = self.lock();
        s.require_user("consent", &consent.user_id)?;
        s.require_client("consent", &consent.client_id)?;
        s.consents.insert((consent.user_id.clone(), consent.client_id.clone()), consent.clone());
        Ok(())
    }

    async fn find_consent(&self, user_id: &str, client_id: &str, now: UnixTime) -> StoreResult<Option<Consent>> {
        let s = self.lock();
        Ok(s.consents.get(&(user_id.to_owned(), client_id.to_owned())).filter(|c| c.expires_at > now).cloned())
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        Ok(self.lock().consents.remove(&(user_id.to_owned(), client_id.to_owned())).is_some())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<PurgeReport> {
        let mut s = self.lock();
        let mut r = PurgeReport::default();
        fn sweep<K, V>(map: &mut HashMap<K, V>, keep: impl Fn(&V) -> bool) -> u64 {
            let before = map.len();
            map.retain(|_, v| keep(v));
            (before - map.len()) as u64
        }
        r.codes = sweep(&mut s.codes, |(c, _)| c.expires_at > now);
        r.access_tokens = sweep(&mut s.access, |(t, _)| t.expires_at > now);
        r.refresh_tokens = sweep(&mut s.refresh, |(t, _, _)| t.expires_at > now);
        r.grants = sweep(&mut s.grants, |g| g.expires_at > now);
        r.device_grants = sweep(&mut s.devices, |d| d.expires_at > now);
        r.replay_entries = sweep(&mut s.replay, |until| *until > now);
        r.sessions = sweep(&mut s.sessions, |session| session.expires_at > now);
        r.consents = sweep(&mut s.consents, |c| c.expires_at > now);
        r.clients = sweep(&mut s.clients, |c| c.expires_at.is_none_or(|e| e > now));
        // Like the SQL cascades: what was issued from a purged client or grant goes too (uncounted).
        s.cascade();
        Ok(r)
    }
}
