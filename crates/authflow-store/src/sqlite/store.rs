//! The storage traits over SQLite: the statements of `sql.rs`, bound by name; reads run inline, writes on
//! the writer thread (see the module docs of `crate::sqlite`).
//!
//! Method by method, the same operations as the PostgreSQL backend (`sql::impl_sql_store!`): every
//! compare-and-set is one conditional statement, and an operation that writes several rows (rotation, the
//! purge) is one write, run by the writer thread under a savepoint of its own
//! (see `writer`), so an error rolls it back whole and nothing is left half-written.

use async_trait::async_trait;
use authflow_core::device::DeviceGrant;
use authflow_core::{Scope, TokenHash, UnixTime};
use rusqlite::Connection;

use super::conn::{execute, query_all, query_opt, Fail};
use super::SqliteStore;
use crate::model::*;
use crate::sql;
use crate::traits::*;
use crate::{StoreError, StoreResult};

/// `INSERT_CLIENT` or `UPDATE_CLIENT`.
fn client_statement(conn: &Connection, statement: &str, c: &Client) -> Result<u64, Fail> {
    let metadata = serde_json::to_string(&c.metadata).map_err(StoreError::unavailable)?;
    Ok(execute(
        conn,
        statement,
        &[
            &c.client_id,
            &sql::opt_hash(&c.secret_hash),
            &sql::opt_hash(&c.registration_token_hash),
            &metadata,
            &c.origin.as_str(),
            &sql::millis(c.created_at),
            &sql::opt_millis(c.expires_at),
            &c.disabled,
        ],
    )?)
}

/// `INSERT_USER` or `UPDATE_USER`.
fn user_statement(conn: &Connection, statement: &str, u: &User) -> rusqlite::Result<u64> {
    execute(conn, statement, &[&u.id, &u.username, &u.password_hash, &sql::millis(u.created_at), &u.disabled])
}

fn insert_grant(conn: &Connection, g: &Grant) -> rusqlite::Result<u64> {
    execute(
        conn,
        sql::INSERT_GRANT,
        &[
            &g.id,
            &g.client_id,
            &g.subject,
            &sql::millis(g.created_at),
            &sql::millis(g.expires_at),
            &sql::opt_millis(g.revoked_at),
        ],
    )
}

/// `INSERT_ACCESS_TOKEN` or `INSERT_REFRESH_TOKEN`.
#[allow(clippy::too_many_arguments)]
fn token_statement(
    conn: &Connection,
    statement: &str,
    token_hash: &TokenHash,
    grant_id: Option<&str>,
    client_id: &str,
    subject: &Option<String>,
    scope: &Option<Scope>,
    resources: &[String],
    issued_at: UnixTime,
    expires_at: UnixTime,
) -> rusqlite::Result<u64> {
    execute(
        conn,
        statement,
        &[
            &sql::hash(token_hash),
            &grant_id,
            &client_id,
            subject,
            &sql::scope(scope),
            &sql::resources(resources),
            &sql::millis(issued_at),
            &sql::millis(expires_at),
        ],
    )
}

fn insert_access_token(conn: &Connection, t: &AccessToken) -> rusqlite::Result<u64> {
    let AccessToken { token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at } = t;
    let statement = sql::INSERT_ACCESS_TOKEN;
    token_statement(
        conn,
        statement,
        token_hash,
        grant_id.as_deref(),
        client_id,
        subject,
        scope,
        resources,
        *issued_at,
        *expires_at,
    )
}

fn insert_refresh_token(conn: &Connection, t: &RefreshToken) -> rusqlite::Result<u64> {
    // The state is not a column of its own: a new token is active.
    let RefreshToken { token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, state: _ } =
        t;
    let statement = sql::INSERT_REFRESH_TOKEN;
    token_statement(
        conn,
        statement,
        token_hash,
        Some(grant_id),
        client_id,
        subject,
        scope,
        resources,
        *issued_at,
        *expires_at,
    )
}

/// `INSERT_DEVICE_GRANT` or `UPDATE_DEVICE_GRANT`.
fn device_statement(conn: &Connection, statement: &str, d: &DeviceGrant) -> rusqlite::Result<u64> {
    let (status, subject) = sql::device_status(&d.status);
    execute(
        conn,
        statement,
        &[
            &sql::hash(&d.device_code_hash),
            &d.user_code,
            &d.client_id,
            &sql::scope(&d.scope),
            &sql::resources(&d.resources),
            &status,
            &subject,
            &sql::count(d.interval_secs),
            &sql::opt_millis(d.last_polled_at),
            &sql::millis(d.created_at),
            &sql::millis(d.expires_at),
            &sql::count(d.revision),
        ],
    )
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let client = client.clone();
        self.write("client", move |conn| client_statement(conn, sql::INSERT_CLIENT, &client).map(drop)).await
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let client = client.clone();
        self.write("client", move |conn| client_statement(conn, sql::UPDATE_CLIENT, &client).map(|n| n > 0)).await
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        self.read("client", |conn| query_opt(conn, sql::FIND_CLIENT, &[&client_id], |r| sql::client(r))).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.read("client", |conn| query_all(conn, sql::LIST_CLIENTS, &[], |r| sql::client(r))).await
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let client_id = client_id.to_owned();
        self.write("client", move |conn| Ok(execute(conn, sql::DELETE_CLIENT, &[&client_id])? > 0)).await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write("user", move |conn| Ok(user_statement(conn, sql::INSERT_USER, &user).map(drop)?)).await
    }

    async fn update_user(&self, user: &User) -> StoreResult<bool> {
        let user = user.clone();
        self.write("user", move |conn| Ok(user_statement(conn, sql::UPDATE_USER, &user)? > 0)).await
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        self.read("user", |conn| query_opt(conn, sql::FIND_USER, &[&id], |r| sql::user(r))).await
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.read("user", |conn| query_opt(conn, sql::FIND_USER_BY_USERNAME, &[&username], |r| sql::user(r))).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read("user", |conn| query_all(conn, sql::LIST_USERS, &[], |r| sql::user(r))).await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write("user", move |conn| Ok(execute(conn, sql::DELETE_USER, &[&id])? > 0)).await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_grant(&self, grant: &Grant) -> StoreResult<()> {
        let grant = grant.clone();
        self.write("grant", move |conn| Ok(insert_grant(conn, &grant).map(drop)?)).await
    }

    async fn find_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
        self.read("grant", |conn| query_opt(conn, sql::FIND_GRANT, &[&id], |r| sql::grant(r))).await
    }

    async fn revoke_grant(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write("grant", move |conn| Ok(execute(conn, sql::REVOKE_GRANT, &[&id, &sql::millis(now)])? > 0)).await
    }

    async fn revoke_grants_of_subject(&self, subject: &str, now: UnixTime) -> StoreResult<u64> {
        let subject = subject.to_owned();
        self.write("grant", move |conn| Ok(execute(conn, sql::REVOKE_SUBJECT_GRANTS, &[&subject, &sql::millis(now)])?))
            .await
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let code = code.clone();
        self.write("authorization code", move |conn| {
            let args: [&dyn rusqlite::ToSql; 13] = [
                &sql::hash(&code.code_hash),
                &code.grant_id,
                &code.client_id,
                &code.subject,
                &code.redirect_uri,
                &sql::scope(&code.scope),
                &sql::resources(&code.resources),
                &code.code_challenge,
                &sql::challenge_method(code.code_challenge_method),
                &code.nonce,
                &sql::millis(code.auth_time),
                &sql::millis(code.issued_at),
                &sql::millis(code.expires_at),
            ];
            execute(conn, sql::INSERT_CODE, &args)?;
            Ok(())
        })
        .await
    }

    async fn consume_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeConsumption> {
        let consumed = self
            .write("authorization code", {
                let code_hash = *code_hash;
                move |conn| {
                    query_opt(conn, sql::CONSUME_CODE, &[&sql::hash(&code_hash), &sql::millis(now)], |r| sql::code(r))
                }
            })
            .await?;
        if let Some(code) = consumed {
            return Ok(CodeConsumption::Consumed(code));
        }
        // Not consumed by us: either spent before (a replay) or unknown.
        let seen = self
            .read("authorization code", |conn| {
                query_opt(conn, sql::FIND_CODE, &[&sql::hash(code_hash)], |r| sql::code(r))
            })
            .await?;
        Ok(match seen {
            Some(code) => CodeConsumption::Replayed(code),
            None => CodeConsumption::NotFound,
        })
    }

    async fn insert_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let token = token.clone();
        self.write("access token", move |conn| Ok(insert_access_token(conn, &token).map(drop)?)).await
    }

    async fn find_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<AccessToken>> {
        self.read("access token", |conn| {
            query_opt(conn, sql::FIND_ACCESS_TOKEN, &[&sql::hash(token_hash), &sql::millis(now)], |r| {
                sql::access_token(r)
            })
        })
        .await
    }

    async fn revoke_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
        let token_hash = *token_hash;
        self.write("access token", move |conn| {
            Ok(execute(conn, sql::REVOKE_ACCESS_TOKEN, &[&sql::hash(&token_hash), &sql::millis(now)])? > 0)
        })
        .await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.write("refresh token", move |conn| Ok(insert_refresh_token(conn, &token).map(drop)?)).await
    }

    async fn find_refresh_token(&self, token_hash: &TokenHash) -> StoreResult<Option<RefreshToken>> {
        self.read("refresh token", |conn| {
            query_opt(conn, sql::FIND_REFRESH_TOKEN, &[&sql::hash(token_hash)], |r| sql::refresh_token(r))
        })
        .await
    }

    async fn rotate_refresh_token(&self, old: &TokenHash, new: &RefreshToken, now: UnixTime) -> StoreResult<bool> {
        let (old, new) = (*old, new.clone());
        self.write("refresh token", move |conn| {
            let marked = execute(conn, sql::MARK_REFRESH_ROTATED, &[&sql::hash(&old), &sql::millis(now)])?;
            if marked == 0 {
                // Already rotated or revoked, or unknown: nothing changed.
                return Ok(false);
            }
            // A failure here (e.g. a conflicting new hash) rolls the write back, which un-marks the old token.
            insert_refresh_token(conn, &new)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_refresh_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
        let token_hash = *token_hash;
        self.write("refresh token", move |conn| {
            Ok(execute(conn, sql::REVOKE_REFRESH_TOKEN, &[&sql::hash(&token_hash), &sql::millis(now)])? > 0)
        })
        .await
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device_grant(&self, grant: &DeviceGrant) -> StoreResult<()> {
        let grant = grant.clone();
        self.write("user code", move |conn| Ok(device_statement(conn, sql::INSERT_DEVICE_GRANT, &grant).map(drop)?))
            .await
    }

    async fn find_device_grant(&self, device_code_hash: &TokenHash) -> StoreResult<Option<DeviceGrant>> {
        self.read("device grant", |conn| {
            query_opt(conn, sql::FIND_DEVICE_GRANT, &[&sql::hash(device_code_hash)], |r| sql::device_grant(r))
        })
        .await
    }

    async fn find_device_grant_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceGrant>> {
        self.read("device grant", |conn| {
            query_opt(conn, sql::FIND_DEVICE_GRANT_BY_USER_CODE, &[&user_code], |r| sql::device_grant(r))
        })
        .await
    }

    async fn update_device_grant(&self, grant: &DeviceGrant) -> StoreResult<bool> {
        let grant = grant.clone();
        self.write("user code", move |conn| Ok(device_statement(conn, sql::UPDATE_DEVICE_GRANT, &grant)? > 0)).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        let (key, public_jwk) = (key.clone(), key.public_jwk.to_string());
        self.write("signing key", move |conn| {
            let args: [&dyn rusqlite::ToSql; 8] = [
                &key.kid,
                &key.alg,
                &key.private_key,
                &public_jwk,
                &sql::millis(key.created_at),
                &sql::millis(key.not_before),
                &sql::opt_millis(key.retire_at),
                &sql::opt_millis(key.expires_at),
            ];
            execute(conn, sql::INSERT_SIGNING_KEY, &args)?;
            Ok(())
        })
        .await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        self.read("signing key", |conn| query_all(conn, sql::LIST_SIGNING_KEYS, &[], |r| sql::signing_key(r))).await
    }

    async fn retire_signing_key(&self, kid: &str, retire_at: UnixTime, expires_at: UnixTime) -> StoreResult<bool> {
        let kid = kid.to_owned();
        self.write("signing key", move |conn| {
            let args: [&dyn rusqlite::ToSql; 3] = [&kid, &sql::millis(retire_at), &sql::millis(expires_at)];
            Ok(execute(conn, sql::RETIRE_SIGNING_KEY, &args)? > 0)
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn remember_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write("replay entry", move |conn| {
            let args: [&dyn rusqlite::ToSql; 3] = [&key, &sql::millis(expires_at), &sql::millis(now)];
            Ok(execute(conn, sql::REMEMBER_ONCE, &args)? > 0)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &LoginSession) -> StoreResult<()> {
        let session = session.clone();
        self.write("login session", move |conn| {
            let args: [&dyn rusqlite::ToSql; 5] = [
                &sql::hash(&session.id_hash),
                &session.user_id,
                &sql::millis(session.auth_time),
                &sql::millis(session.created_at),
                &sql::millis(session.expires_at),
            ];
            execute(conn, sql::INSERT_SESSION, &args)?;
            Ok(())
        })
        .await
    }

    async fn find_session(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<LoginSession>> {
        self.read("login session", |conn| {
            query_opt(conn, sql::FIND_SESSION, &[&sql::hash(id_hash), &sql::millis(now)], |r| sql::login_session(r))
        })
        .await
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<bool> {
        let id_hash = *id_hash;
        self.write("login session", move |conn| Ok(execute(conn, sql::DELETE_SESSION, &[&sql::hash(&id_hash)])? > 0))
            .await
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()> {
        let consent = consent.clone();
        self.write("consent", move |conn| {
            let args: [&dyn rusqlite::ToSql; 6] = [
                &consent.user_id,
                &consent.client_id,
                &sql::scope(&consent.scope),
                &sql::resources(&consent.resources),
                &sql::millis(consent.granted_at),
                &sql::millis(consent.expires_at),
            ];
            execute(conn, sql::UPSERT_CONSENT, &args)?;
            Ok(())
        })
        .await
    }

    async fn find_consent(&self, user_id: &str, client_id: &str, now: UnixTime) -> StoreResult<Option<Consent>> {
        self.read("consent", |conn| {
            query_opt(conn, sql::FIND_CONSENT, &[&user_id, &client_id, &sql::millis(now)], |r| sql::consent(r))
        })
        .await
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        let (user_id, client_id) = (user_id.to_owned(), client_id.to_owned());
        self.write("consent", move |conn| Ok(execute(conn, sql::DELETE_CONSENT, &[&user_id, &client_id])? > 0)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read("ping", |conn| query_opt(conn, sql::PING, &[], |_| Ok(())).map(drop)).await
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<PurgeReport> {
        let now = sql::millis(now);
        // On the writer's thread, like every write: a long purge holds up the writes queued behind it, never
        // a runtime thread.
        self.write("purge", move |conn| {
            let step = |statement| execute(conn, statement, &[&now]);
            // Field order is evaluation order: tokens before their grants, grants before clients.
            let report = PurgeReport {
                codes: step(sql::PURGE_CODES)?,
                access_tokens: step(sql::PURGE_ACCESS_TOKENS)?,
                refresh_tokens: step(sql::PURGE_REFRESH_TOKENS)?,
                grants: step(sql::PURGE_GRANTS)?,
                device_grants: step(sql::PURGE_DEVICE_GRANTS)?,
                replay_entries: step(sql::PURGE_REPLAY)?,
                // Before clients, so a consent that expired itself is counted as such.
                sessions: step(sql::PURGE_SESSIONS)?,
                consents: step(sql::PURGE_CONSENTS)?,
                clients: step(sql::PURGE_CLIENTS)?,
            };
            Ok(report)
        })
        .await
    }
}
