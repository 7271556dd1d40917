//! What the SQL backends share: value encodings, row decoding, error mapping, and every statement.
//!
//! SQLite and PostgreSQL agree on every statement authflow needs (`$n` parameters, `RETURNING`,
//! `ON CONFLICT … DO UPDATE … WHERE`, `CASE`, joins), so each query is written once, here. PostgreSQL runs
//! them through sqlx, with every trait implemented by [`impl_sql_store!`]; SQLite runs them through rusqlite
//! in `crate::sqlite`. Both decode rows with the same [`Columns`] decoders.

use authflow_core::device::DeviceStatus;
use authflow_core::pkce::CodeChallengeMethod;
use authflow_core::{Scope, TokenHash, UnixTime};
use serde::de::DeserializeOwned;
#[cfg(feature = "postgres")]
use sqlx::error::ErrorKind;
#[cfg(feature = "postgres")]
use sqlx::types::Json;
#[cfg(feature = "postgres")]
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::model::*;
use crate::{StoreError, StoreResult};

/// Map a sqlx error: unique violations are conflicts over `what`, other constraint violations and decoding
/// failures are [`StoreError::Corrupt`] (a caller bug or a damaged database), everything else is
/// [`StoreError::Unavailable`]. (`crate::sqlite` maps rusqlite's errors the same way.)
#[cfg(feature = "postgres")]
pub(crate) fn db_error(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) => match d.kind() {
            ErrorKind::UniqueViolation => StoreError::Conflict(what),
            ErrorKind::ForeignKeyViolation => StoreError::Corrupt(format!("{what} refers to a missing record: {d}")),
            ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                StoreError::Corrupt(format!("{what} violates a constraint: {d}"))
            }
            // SQLSTATE class 22, a data exception: the value is at fault, and trying again will not help.
            _ if d.code().is_some_and(|c| c.starts_with("22")) => {
                StoreError::Corrupt(format!("{what} holds a value the database refuses: {d}"))
            }
            _ => StoreError::unavailable(e),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(format!("{what}: {e}")),
        _ => StoreError::unavailable(e),
    }
}

// ---- encodings -------------------------------------------------------------------------------------------

/// A time as stored: milliseconds, saturating at `i64::MAX` (292 million years from now).
pub(crate) fn millis(t: UnixTime) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// An optional time as stored.
pub(crate) fn opt_millis(t: Option<UnixTime>) -> Option<i64> {
    t.map(millis)
}

/// A counter (revision, interval) as stored, saturating like [`millis`].
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A scope as stored: its space-delimited string, `NULL` when absent.
pub(crate) fn scope(s: &Option<Scope>) -> Option<String> {
    s.as_ref().map(Scope::to_string)
}

/// RFC 8707 resources as stored: a JSON array.
pub(crate) fn resources(r: &[String]) -> String {
    // A list of strings always serialises.
    serde_json::to_string(r).unwrap_or_else(|_| String::from("[]"))
}

/// A hash as stored.
pub(crate) fn hash(h: &TokenHash) -> &[u8] {
    h.as_bytes()
}

/// An optional hash as stored.
pub(crate) fn opt_hash(h: &Option<TokenHash>) -> Option<&[u8]> {
    h.as_ref().map(hash)
}

/// The stored name of a PKCE method.
pub(crate) fn challenge_method(m: CodeChallengeMethod) -> &'static str {
    match m {
        CodeChallengeMethod::S256 => "S256",
        CodeChallengeMethod::Plain => "plain",
    }
}

/// A device status as stored: `(status, subject)`.
pub(crate) fn device_status(s: &DeviceStatus) -> (&'static str, Option<&str>) {
    match s {
        DeviceStatus::Pending => ("pending", None),
        DeviceStatus::Approved { subject } => ("approved", Some(subject)),
        DeviceStatus::Denied => ("denied", None),
        DeviceStatus::Consumed => ("consumed", None),
    }
}

// ---- decoding --------------------------------------------------------------------------------------------

/// Typed access to a result row's columns; every failure is [`StoreError::Corrupt`].
pub(crate) trait Columns {
    /// A `TEXT` column.
    fn text(&self, column: &str) -> StoreResult<String>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    /// A `BIGINT` column.
    fn int(&self, column: &str) -> StoreResult<i64>;
    /// A nullable `BIGINT` column.
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    /// A `BLOB`/`BYTEA` column.
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>>;
    /// A nullable `TEXT` column, parsed where it lies in the row, without a copy.
    fn parse_opt_text<T>(&self, column: &str, parse: impl FnOnce(&str) -> StoreResult<T>) -> StoreResult<Option<T>>;
    /// A nullable `BLOB`/`BYTEA` column, parsed where it lies in the row, without a copy.
    fn parse_opt_bytes<T>(&self, column: &str, parse: impl FnOnce(&[u8]) -> StoreResult<T>) -> StoreResult<Option<T>>;
    /// A boolean column.
    fn flag(&self, column: &str) -> StoreResult<bool>;
    /// A JSON column (`TEXT` in SQLite, `JSONB` in PostgreSQL).
    fn json(&self, column: &str) -> StoreResult<serde_json::Value>;

    /// A JSON column decoded as `T`.
    fn json_as<T: DeserializeOwned>(&self, column: &str) -> StoreResult<T> {
        serde_json::from_value(self.json(column)?).map_err(|e| corrupt(column, e))
    }

    /// A time column.
    fn time(&self, column: &str) -> StoreResult<UnixTime> {
        unsigned(column, self.int(column)?).map(UnixTime::from_millis)
    }

    /// A nullable time column.
    fn opt_time(&self, column: &str) -> StoreResult<Option<UnixTime>> {
        self.opt_int(column)?.map(|v| unsigned(column, v).map(UnixTime::from_millis)).transpose()
    }

    /// A non-negative counter column.
    fn counter(&self, column: &str) -> StoreResult<u64> {
        unsigned(column, self.int(column)?)
    }

    /// A hash column.
    fn hash(&self, column: &str) -> StoreResult<TokenHash> {
        self.opt_hash(column)?.ok_or_else(|| null(column))
    }

    /// A nullable hash column.
    fn opt_hash(&self, column: &str) -> StoreResult<Option<TokenHash>> {
        self.parse_opt_bytes(column, |b| to_hash(column, b))
    }

    /// A nullable scope column.
    fn scope(&self, column: &str) -> StoreResult<Option<Scope>> {
        self.parse_opt_text(column, |s| Scope::parse(s).map_err(|e| corrupt(column, e)))
    }

    /// A resources column (a JSON array of strings in `TEXT`).
    fn resources(&self, column: &str) -> StoreResult<Vec<String>> {
        let parse = |s: &str| serde_json::from_str(s).map_err(|e| corrupt(column, e));
        self.parse_opt_text(column, parse)?.ok_or_else(|| null(column))
    }
}

fn null(column: &str) -> StoreError {
    corrupt(column, "NULL where a value is required")
}

pub(crate) fn corrupt(column: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {column}: {why}"))
}

fn unsigned(column: &str, v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(column, format!("negative value {v}")))
}

fn to_hash(column: &str, bytes: &[u8]) -> StoreResult<TokenHash> {
    TokenHash::from_slice(bytes).ok_or_else(|| corrupt(column, format!("{} bytes, expected 32", bytes.len())))
}

#[cfg(feature = "postgres")]
fn get<'r, R, T>(row: &'r R, column: &str) -> StoreResult<T>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

/// sqlx rows (PostgreSQL).
#[cfg(feature = "postgres")]
impl Columns for sqlx::postgres::PgRow {
    fn text(&self, column: &str) -> StoreResult<String> {
        get(self, column)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        get(self, column)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        get(self, column)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        get(self, column)
    }
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        get(self, column)
    }
    fn parse_opt_text<T>(&self, column: &str, parse: impl FnOnce(&str) -> StoreResult<T>) -> StoreResult<Option<T>> {
        get::<_, Option<&str>>(self, column)?.map(parse).transpose()
    }
    fn parse_opt_bytes<T>(&self, column: &str, parse: impl FnOnce(&[u8]) -> StoreResult<T>) -> StoreResult<Option<T>> {
        get::<_, Option<&[u8]>>(self, column)?.map(parse).transpose()
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        get(self, column)
    }
    fn json(&self, column: &str) -> StoreResult<serde_json::Value> {
        get::<_, Json<serde_json::Value>>(self, column).map(|j| j.0)
    }
}

/// A rusqlite row (SQLite) whose columns the decoders name. rusqlite finds a name by comparing it with every
/// column before it, one `sqlite3_column_name` each; decoders read the columns in the order the statement
/// lists them, so each name is tried first at the column after the previous one, and looked for only if it is
/// not there.
#[cfg(feature = "sqlite")]
pub(crate) struct SqliteRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    next: std::cell::Cell<usize>,
}

#[cfg(feature = "sqlite")]
impl<'r, 's> SqliteRow<'r, 's> {
    pub(crate) fn new(row: &'r rusqlite::Row<'s>) -> Self {
        SqliteRow { row, next: std::cell::Cell::new(0) }
    }

    fn index(&self, column: &str) -> StoreResult<usize> {
        let statement: &rusqlite::Statement<'_> = self.row.as_ref();
        let hint = self.next.get();
        // `column_name` fails past the last column, which counts as a miss.
        let index = if statement.column_name(hint).is_ok_and(|name| name.eq_ignore_ascii_case(column)) {
            hint
        } else {
            statement.column_index(column).map_err(|e| corrupt(column, e))?
        };
        self.next.set(index + 1);
        Ok(index)
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> StoreResult<T> {
        self.row.get(self.index(column)?).map_err(|e| corrupt(column, e))
    }

    fn value(&self, column: &str) -> StoreResult<rusqlite::types::ValueRef<'_>> {
        self.row.get_ref(self.index(column)?).map_err(|e| corrupt(column, e))
    }
}

#[cfg(feature = "sqlite")]
impl<'s> std::ops::Deref for SqliteRow<'_, 's> {
    type Target = rusqlite::Row<'s>;
    fn deref(&self) -> &Self::Target {
        self.row
    }
}

/// The tables are `STRICT`, so a column holds exactly its declared type; JSON is `TEXT` and a boolean an
/// `INTEGER` 0 or 1.
#[cfg(feature = "sqlite")]
impl Columns for SqliteRow<'_, '_> {
    fn text(&self, column: &str) -> StoreResult<String> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.get(column)
    }
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        self.get(column)
    }
    fn parse_opt_text<T>(&self, column: &str, parse: impl FnOnce(&str) -> StoreResult<T>) -> StoreResult<Option<T>> {
        let value = self.value(column)?;
        value.as_str_or_null().map_err(|e| corrupt(column, e))?.map(parse).transpose()
    }
    fn parse_opt_bytes<T>(&self, column: &str, parse: impl FnOnce(&[u8]) -> StoreResult<T>) -> StoreResult<Option<T>> {
        let value = self.value(column)?;
        value.as_blob_or_null().map_err(|e| corrupt(column, e))?.map(parse).transpose()
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        self.get(column)
    }
    fn json(&self, column: &str) -> StoreResult<serde_json::Value> {
        self.json_as(column)
    }
    /// Straight from the text: the default goes through a `serde_json::Value`.
    fn json_as<T: DeserializeOwned>(&self, column: &str) -> StoreResult<T> {
        let parse = |s: &str| serde_json::from_str(s).map_err(|e| corrupt(column, e));
        self.parse_opt_text(column, parse)?.ok_or_else(|| null(column))
    }
}

// ---- records ---------------------------------------------------------------------------------------------

pub(crate) fn client(r: &impl Columns) -> StoreResult<Client> {
    let origin = r.text("origin")?;
    Ok(Client {
        client_id: r.text("id")?,
        secret_hash: r.opt_hash("secret_hash")?,
        registration_token_hash: r.opt_hash("registration_token_hash")?,
        metadata: r.json_as("metadata")?,
        origin: ClientOrigin::parse(&origin).ok_or_else(|| corrupt("origin", format!("unknown origin {origin:?}")))?,
        created_at: r.time("created_at")?,
        expires_at: r.opt_time("expires_at")?,
        disabled: r.flag("disabled")?,
    })
}

pub(crate) fn user(r: &impl Columns) -> StoreResult<User> {
    Ok(User {
        id: r.text("id")?,
        username: r.text("username")?,
        password_hash: r.opt_text("password_hash")?,
        created_at: r.time("created_at")?,
        disabled: r.flag("disabled")?,
    })
}

pub(crate) fn grant(r: &impl Columns) -> StoreResult<Grant> {
    Ok(Grant {
        id: r.text("id")?,
        client_id: r.text("client_id")?,
        subject: r.opt_text("subject")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

pub(crate) fn code(r: &impl Columns) -> StoreResult<AuthorizationCode> {
    let method = r.text("code_challenge_method")?;
    Ok(AuthorizationCode {
        code_hash: r.hash("code_hash")?,
        grant_id: r.text("grant_id")?,
        client_id: r.text("client_id")?,
        subject: r.text("subject")?,
        redirect_uri: r.text("redirect_uri")?,
        scope: r.scope("scope")?,
        resources: r.resources("resources")?,
        code_challenge: r.text("code_challenge")?,
        code_challenge_method: match method.as_str() {
            "S256" => CodeChallengeMethod::S256,
            "plain" => CodeChallengeMethod::Plain,
            _ => return Err(corrupt("code_challenge_method", format!("unknown method {method:?}"))),
        },
        nonce: r.opt_text("nonce")?,
        auth_time: r.time("auth_time")?,
        issued_at: r.time("issued_at")?,
        expires_at: r.time("expires_at")?,
    })
}

pub(crate) fn access_token(r: &impl Columns) -> StoreResult<AccessToken> {
    Ok(AccessToken {
        token_hash: r.hash("token_hash")?,
        grant_id: r.opt_text("grant_id")?,
        client_id: r.text("client_id")?,
        subject: r.opt_text("subject")?,
        scope: r.scope("scope")?,
        resources: r.resources("resources")?,
        issued_at: r.time("issued_at")?,
        expires_at: r.time("expires_at")?,
    })
}

/// A refresh token; the row carries a computed `state` column (see `FIND_REFRESH_TOKEN`).
pub(crate) fn refresh_token(r: &impl Columns) -> StoreResult<RefreshToken> {
    let state = r.text("state")?;
    Ok(RefreshToken {
        token_hash: r.hash("token_hash")?,
        grant_id: r.text("grant_id")?,
        client_id: r.text("client_id")?,
        subject: r.opt_text("subject")?,
        scope: r.scope("scope")?,
        resources: r.resources("resources")?,
        issued_at: r.time("issued_at")?,
        expires_at: r.time("expires_at")?,
        state: match state.as_str() {
            "active" => RefreshState::Active,
            "rotated" => RefreshState::Rotated,
            "revoked" => RefreshState::Revoked,
            _ => return Err(corrupt("state", format!("unknown state {state:?}"))),
        },
    })
}

pub(crate) fn device_grant(r: &impl Columns) -> StoreResult<authflow_core::device::DeviceGrant> {
    let status = r.text("status")?;
    let subject = r.opt_text("subject")?;
    let status = match (status.as_str(), subject) {
        ("pending", None) => DeviceStatus::Pending,
        ("approved", Some(subject)) => DeviceStatus::Approved { subject },
        ("denied", None) => DeviceStatus::Denied,
        ("consumed", None) => DeviceStatus::Consumed,
        (status, subject) => {
            return Err(corrupt("status", format!("status {status:?} with subject {subject:?}")));
        }
    };
    Ok(authflow_core::device::DeviceGrant {
        device_code_hash: r.hash("device_code_hash")?,
        user_code: r.text("user_code")?,
        client_id: r.text("client_id")?,
        scope: r.scope("scope")?,
        resources: r.resources("resources")?,
        status,
        interval_secs: r.counter("interval_secs")?,
        last_polled_at: r.opt_time("last_polled_at")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        revision: r.counter("revision")?,
    })
}

pub(crate) fn signing_key(r: &impl Columns) -> StoreResult<SigningKey> {
    Ok(SigningKey {
        kid: r.text("kid")?,
        alg: r.text("alg")?,
        private_key: r.bytes("private_key")?,
        public_jwk: r.json("public_jwk")?,
        created_at: r.time("created_at")?,
        not_before: r.time("not_before")?,
        retire_at: r.opt_time("retire_at")?,
        expires_at: r.opt_time("expires_at")?,
    })
}

pub(crate) fn login_session(r: &impl Columns) -> StoreResult<LoginSession> {
    Ok(LoginSession {
        id_hash: r.hash("id_hash")?,
        user_id: r.text("user_id")?,
        auth_time: r.time("auth_time")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
    })
}

pub(crate) fn consent(r: &impl Columns) -> StoreResult<Consent> {
    Ok(Consent {
        user_id: r.text("user_id")?,
        client_id: r.text("client_id")?,
        scope: r.scope("scope")?,
        resources: r.resources("resources")?,
        granted_at: r.time("granted_at")?,
        expires_at: r.time("expires_at")?,
    })
}

// ---- statements ------------------------------------------------------------------------------------------
//
// Written once for both dialects. Parameters are `$n`; an insert and the matching full update bind the same
// columns in the same order, so one bind helper serves both. In SQLite `$n` is a *named* parameter, numbered
// in order of first appearance (`UPDATE_CLIENT` names `$2` first), so `crate::sqlite` binds `$n` by name.

macro_rules! client_columns {
    () => {
        "id, secret_hash, registration_token_hash, metadata, origin, created_at, expires_at, disabled"
    };
}
macro_rules! user_columns {
    () => {
        "id, username, password_hash, created_at, disabled"
    };
}
macro_rules! grant_columns {
    () => {
        "id, client_id, subject, created_at, expires_at, revoked_at"
    };
}
macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, subject, redirect_uri, scope, resources, code_challenge, \
         code_challenge_method, nonce, auth_time, issued_at, expires_at"
    };
}
macro_rules! token_columns {
    () => {
        "token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at"
    };
}
macro_rules! device_columns {
    () => {
        "device_code_hash, user_code, client_id, scope, resources, status, subject, interval_secs, \
         last_polled_at, created_at, expires_at, revision"
    };
}
macro_rules! session_columns {
    () => {
        "id_hash, user_id, auth_time, created_at, expires_at"
    };
}
macro_rules! consent_columns {
    () => {
        "user_id, client_id, scope, resources, granted_at, expires_at"
    };
}
macro_rules! key_columns {
    () => {
        "kid, alg, private_key, public_jwk, created_at, not_before, retire_at, expires_at"
    };
}

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const INSERT_CLIENT: &str =
    concat!("INSERT INTO clients (", client_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET secret_hash = $2, registration_token_hash = $3, \
     metadata = $4, origin = $5, created_at = $6, expires_at = $7, disabled = $8 WHERE id = $1";
pub(crate) const FIND_CLIENT: &str = concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1");
pub(crate) const LIST_CLIENTS: &str = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY created_at, id");
pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE id = $1";

pub(crate) const INSERT_USER: &str = concat!("INSERT INTO users (", user_columns!(), ") VALUES ($1, $2, $3, $4, $5)");
pub(crate) const UPDATE_USER: &str =
    "UPDATE users SET username = $2, password_hash = $3, created_at = $4, disabled = $5 WHERE id = $1";
pub(crate) const FIND_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
pub(crate) const FIND_USER_BY_USERNAME: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1");
pub(crate) const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

pub(crate) const INSERT_GRANT: &str =
    concat!("INSERT INTO grants (", grant_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6)");
pub(crate) const FIND_GRANT: &str = concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1");
/// Keeps the first revocation time.
pub(crate) const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
pub(crate) const REVOKE_SUBJECT_GRANTS: &str =
    "UPDATE grants SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL";

pub(crate) const INSERT_CODE: &str = concat!(
    "INSERT INTO authorization_codes (",
    code_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
/// The atomic step of code redemption: only the first caller's update matches.
pub(crate) const CONSUME_CODE: &str = concat!(
    "UPDATE authorization_codes SET consumed_at = $2 WHERE code_hash = $1 AND consumed_at IS NULL RETURNING ",
    code_columns!()
);
pub(crate) const FIND_CODE: &str =
    concat!("SELECT ", code_columns!(), " FROM authorization_codes WHERE code_hash = $1");

pub(crate) const INSERT_ACCESS_TOKEN: &str =
    concat!("INSERT INTO access_tokens (", token_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
/// Live tokens only: two unique-key lookups, one for a token without a grant (whose `g` columns are NULL);
/// a token whose grant is missing counts as dead, as in the memory backend.
pub(crate) const FIND_ACCESS_TOKEN: &str = "SELECT a.token_hash AS token_hash, a.grant_id AS grant_id, \
     a.client_id AS client_id, a.subject AS subject, a.scope AS scope, a.resources AS resources, \
     a.issued_at AS issued_at, a.expires_at AS expires_at \
     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id \
     WHERE a.token_hash = $1 AND a.revoked_at IS NULL AND a.expires_at > $2 AND g.revoked_at IS NULL \
     AND (a.grant_id IS NULL OR g.id IS NOT NULL)";
pub(crate) const REVOKE_ACCESS_TOKEN: &str =
    "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE token_hash = $1";

pub(crate) const INSERT_REFRESH_TOKEN: &str =
    concat!("INSERT INTO refresh_tokens (", token_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
/// Any state; a missing grant (purged) counts as revoked, like a revoked one.
pub(crate) const FIND_REFRESH_TOKEN: &str = "SELECT r.token_hash AS token_hash, r.grant_id AS grant_id, \
     r.client_id AS client_id, r.subject AS subject, r.scope AS scope, r.resources AS resources, \
     r.issued_at AS issued_at, r.expires_at AS expires_at, \
     CASE WHEN r.revoked_at IS NOT NULL OR g.id IS NULL OR g.revoked_at IS NOT NULL THEN 'revoked' \
          WHEN r.rotated_at IS NOT NULL THEN 'rotated' ELSE 'active' END AS state \
     FROM refresh_tokens r LEFT JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1";
/// The atomic step of rotation: only an active token of a live grant is marked, and only once.
pub(crate) const MARK_REFRESH_ROTATED: &str = "UPDATE refresh_tokens SET rotated_at = $2 \
     WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND EXISTS \
     (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.revoked_at IS NULL)";
pub(crate) const REVOKE_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE token_hash = $1";

pub(crate) const INSERT_DEVICE_GRANT: &str = concat!(
    "INSERT INTO device_grants (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);
pub(crate) const FIND_DEVICE_GRANT: &str =
    concat!("SELECT ", device_columns!(), " FROM device_grants WHERE device_code_hash = $1");
pub(crate) const FIND_DEVICE_GRANT_BY_USER_CODE: &str =
    concat!("SELECT ", device_columns!(), " FROM device_grants WHERE user_code = $1");
/// Compare-and-set on `revision` ($12 is the revision the caller read).
pub(crate) const UPDATE_DEVICE_GRANT: &str = "UPDATE device_grants SET user_code = $2, client_id = $3, scope = $4, \
     resources = $5, status = $6, subject = $7, interval_secs = $8, last_polled_at = $9, created_at = $10, \
     expires_at = $11, revision = revision + 1 WHERE device_code_hash = $1 AND revision = $12";

pub(crate) const INSERT_SIGNING_KEY: &str =
    concat!("INSERT INTO signing_keys (", key_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
pub(crate) const LIST_SIGNING_KEYS: &str =
    concat!("SELECT ", key_columns!(), " FROM signing_keys ORDER BY created_at DESC, kid DESC");
pub(crate) const RETIRE_SIGNING_KEY: &str = "UPDATE signing_keys SET retire_at = $2, expires_at = $3 WHERE kid = $1";

/// Inserts a new key, or replaces an expired one; a live entry makes it affect no row.
pub(crate) const REMEMBER_ONCE: &str = "INSERT INTO replay_guard (key, expires_at) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_guard.expires_at <= $3";

pub(crate) const INSERT_SESSION: &str =
    concat!("INSERT INTO login_sessions (", session_columns!(), ") VALUES ($1, $2, $3, $4, $5)");
pub(crate) const FIND_SESSION: &str =
    concat!("SELECT ", session_columns!(), " FROM login_sessions WHERE id_hash = $1 AND expires_at > $2");
pub(crate) const DELETE_SESSION: &str = "DELETE FROM login_sessions WHERE id_hash = $1";

/// One statement, so concurrent approvals of the same user and client leave one of them, whole.
pub(crate) const UPSERT_CONSENT: &str = concat!(
    "INSERT INTO consents (",
    consent_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
     resources = excluded.resources, granted_at = excluded.granted_at, expires_at = excluded.expires_at"
);
pub(crate) const FIND_CONSENT: &str =
    concat!("SELECT ", consent_columns!(), " FROM consents WHERE user_id = $1 AND client_id = $2 AND expires_at > $3");
pub(crate) const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";

/// The purge, in order: rows that expired by `$1`. Deleting a grant or a client cascades to what was
/// issued from it (only directly expired rows are counted).
pub(crate) const PURGE_CODES: &str = "DELETE FROM authorization_codes WHERE expires_at <= $1";
pub(crate) const PURGE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens WHERE expires_at <= $1";
pub(crate) const PURGE_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at <= $1";
pub(crate) const PURGE_GRANTS: &str = "DELETE FROM grants WHERE expires_at <= $1";
pub(crate) const PURGE_DEVICE_GRANTS: &str = "DELETE FROM device_grants WHERE expires_at <= $1";
pub(crate) const PURGE_REPLAY: &str = "DELETE FROM replay_guard WHERE expires_at <= $1";
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM login_sessions WHERE expires_at <= $1";
pub(crate) const PURGE_CONSENTS: &str = "DELETE FROM consents WHERE expires_at <= $1";
pub(crate) const PURGE_CLIENTS: &str = "DELETE FROM clients WHERE expires_at <= $1";

// ---- the PostgreSQL implementation -----------------------------------------------------------------------

/// Implements every storage trait for a sqlx backend `$store` over database `$db`, named `$backend`
/// (PostgreSQL; SQLite has its own implementation over rusqlite in `crate::sqlite`).
///
/// The backend provides these inherent methods:
/// - `async fn read(&self) -> StoreResult<Lease<'_>>`: a connection for reads;
/// - `async fn write(&self) -> StoreResult<Lease<'_>>`: a connection for writes;
/// - `async fn begin(conn: &mut Connection) -> StoreResult<sqlx::Transaction<'_, $db>>`: a write transaction;
/// - `async fn begin_purge(conn: &mut Connection) -> StoreResult<sqlx::Transaction<'_, $db>>`: the purge's
///   transaction (PostgreSQL serialises purges across replicas there);
/// - `async fn find_access_token_batched(&self, &TokenHash, UnixTime) -> StoreResult<Option<AccessToken>>`:
///   the lookup of every introspection, which the backend may batch;
/// - `async fn insert_access_token_batched(&self, &AccessToken) -> StoreResult<()>`: the write of every
///   issuance, which the backend may batch.
///
/// Every lease is settled with its query's outcome (see `lease`).
///
/// Atomicity never relies on the pools: every compare-and-set is a single conditional statement (or, for
/// rotation, a conditional statement and an insert in one transaction), so it holds for any number of
/// connections, processes or replicas.
#[cfg(feature = "postgres")]
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use authflow_core::device::DeviceGrant;
            use authflow_core::{TokenHash, UnixTime};
            use sqlx::types::Json;
            use $crate::model::*;
            use $crate::sql::{self, db_error};
            use $crate::traits::*;

            type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

            /// `INSERT_CLIENT` or `UPDATE_CLIENT` with its parameters.
            fn client_query<'q>(statement: &'static str, c: &'q Client) -> Query<'q> {
                sqlx::query(statement)
                    .bind(c.client_id.as_str())
                    .bind(sql::opt_hash(&c.secret_hash))
                    .bind(sql::opt_hash(&c.registration_token_hash))
                    .bind(Json(&c.metadata))
                    .bind(c.origin.as_str())
                    .bind(sql::millis(c.created_at))
                    .bind(sql::opt_millis(c.expires_at))
                    .bind(c.disabled)
            }

            /// `INSERT_USER` or `UPDATE_USER` with its parameters.
            fn user_query<'q>(statement: &'static str, u: &'q User) -> Query<'q> {
                sqlx::query(statement)
                    .bind(u.id.as_str())
                    .bind(u.username.as_str())
                    .bind(u.password_hash.as_deref())
                    .bind(sql::millis(u.created_at))
                    .bind(u.disabled)
            }

            /// `INSERT_REFRESH_TOKEN` with its parameters (access tokens go through the backend's batches).
            fn refresh_query<'q>(t: &'q RefreshToken) -> Query<'q> {
                sqlx::query(sql::INSERT_REFRESH_TOKEN)
                    .bind(sql::hash(&t.token_hash))
                    .bind(t.grant_id.as_str())
                    .bind(t.client_id.as_str())
                    .bind(t.subject.as_deref())
                    .bind(sql::scope(&t.scope))
                    .bind(sql::resources(&t.resources))
                    .bind(sql::millis(t.issued_at))
                    .bind(sql::millis(t.expires_at))
            }

            fn grant_query<'q>(grant: &'q Grant) -> Query<'q> {
                sqlx::query(sql::INSERT_GRANT)
                    .bind(grant.id.as_str())
                    .bind(grant.client_id.as_str())
                    .bind(grant.subject.as_deref())
                    .bind(sql::millis(grant.created_at))
                    .bind(sql::millis(grant.expires_at))
                    .bind(sql::opt_millis(grant.revoked_at))
            }

            /// `INSERT_DEVICE_GRANT` or `UPDATE_DEVICE_GRANT` with its parameters.
            fn device_query<'q>(statement: &'static str, d: &'q DeviceGrant) -> Query<'q> {
                let (status, subject) = sql::device_status(&d.status);
                sqlx::query(statement)
                    .bind(sql::hash(&d.device_code_hash))
                    .bind(d.user_code.as_str())
                    .bind(d.client_id.as_str())
                    .bind(sql::scope(&d.scope))
                    .bind(sql::resources(&d.resources))
                    .bind(status)
                    .bind(subject)
                    .bind(sql::count(d.interval_secs))
                    .bind(sql::opt_millis(d.last_polled_at))
                    .bind(sql::millis(d.created_at))
                    .bind(sql::millis(d.expires_at))
                    .bind(sql::count(d.revision))
            }

            async fn purge_step(
                tx: &mut sqlx::Transaction<'_, $db>,
                statement: &'static str,
                now: i64,
            ) -> StoreResult<u64> {
                let done = sqlx::query(statement).bind(now).execute(&mut **tx).await.map_err(db_error("purge"))?;
                Ok(done.rows_affected())
            }

            #[async_trait]
            impl ClientStore for $store {
                async fn insert_client(&self, client: &Client) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = client_query(sql::INSERT_CLIENT, client).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("client"))?;
                    Ok(())
                }

                async fn update_client(&self, client: &Client) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = client_query(sql::UPDATE_CLIENT, client).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("client"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_CLIENT).bind(client_id).fetch_optional(db.conn()).await;
                    let row = db.settle(row).map_err(db_error("client"))?;
                    row.map(|r| sql::client(&r)).transpose()
                }

                async fn list_clients(&self) -> StoreResult<Vec<Client>> {
                    let mut db = self.read().await?;
                    let rows = sqlx::query(sql::LIST_CLIENTS).fetch_all(db.conn()).await;
                    let rows = db.settle(rows).map_err(db_error("client"))?;
                    rows.iter().map(sql::client).collect()
                }

                async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::DELETE_CLIENT).bind(client_id).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("client"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl UserStore for $store {
                async fn insert_user(&self, user: &User) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = user_query(sql::INSERT_USER, user).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("user"))?;
                    Ok(())
                }

                async fn update_user(&self, user: &User) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = user_query(sql::UPDATE_USER, user).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("user"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_USER).bind(id).fetch_optional(db.conn()).await;
                    let row = db.settle(row).map_err(db_error("user"))?;
                    row.map(|r| sql::user(&r)).transpose()
                }

                async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_USER_BY_USERNAME).bind(username).fetch_optional(db.conn()).await;
                    let row = db.settle(row).map_err(db_error("user"))?;
                    row.map(|r| sql::user(&r)).transpose()
                }

                async fn list_users(&self) -> StoreResult<Vec<User>> {
                    let mut db = self.read().await?;
                    let rows = sqlx::query(sql::LIST_USERS).fetch_all(db.conn()).await;
                    let rows = db.settle(rows).map_err(db_error("user"))?;
                    rows.iter().map(sql::user).collect()
                }

                async fn delete_user(&self, id: &str) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::DELETE_USER).bind(id).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("user"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl TokenStore for $store {
                async fn insert_grant(&self, grant: &Grant) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = grant_query(grant).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("grant"))?;
                    Ok(())
                }

                async fn find_grant(&self, id: &str) -> StoreResult<Option<Grant>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_GRANT).bind(id).fetch_optional(db.conn()).await;
                    let row = db.settle(row).map_err(db_error("grant"))?;
                    row.map(|r| sql::grant(&r)).transpose()
                }

                async fn revoke_grant(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::REVOKE_GRANT).bind(id).bind(sql::millis(now)).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("grant"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn revoke_grants_of_subject(&self, subject: &str, now: UnixTime) -> StoreResult<u64> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::REVOKE_SUBJECT_GRANTS)
                        .bind(subject)
                        .bind(sql::millis(now))
                        .execute(db.conn())
                        .await;
                    let done = db.settle(done).map_err(db_error("grant"))?;
                    Ok(done.rows_affected())
                }

                async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::INSERT_CODE)
                        .bind(sql::hash(&code.code_hash))
                        .bind(code.grant_id.as_str())
                        .bind(code.client_id.as_str())
                        .bind(code.subject.as_str())
                        .bind(code.redirect_uri.as_str())
                        .bind(sql::scope(&code.scope))
                        .bind(sql::resources(&code.resources))
                        .bind(code.code_challenge.as_str())
                        .bind(sql::challenge_method(code.code_challenge_method))
                        .bind(code.nonce.as_deref())
                        .bind(sql::millis(code.auth_time))
                        .bind(sql::millis(code.issued_at))
                        .bind(sql::millis(code.expires_at))
                        .execute(db.conn())
                        .await;
                    db.settle(done).map_err(db_error("authorization code"))?;
                    Ok(())
                }

                async fn consume_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeConsumption> {
                    let mut db = self.write().await?;
                    let consumed = sqlx::query(sql::CONSUME_CODE)
                        .bind(sql::hash(code_hash))
                        .bind(sql::millis(now))
                        .fetch_optional(db.conn())
                        .await;
                    let consumed = db.settle(consumed).map_err(db_error("authorization code"))?;
                    if let Some(row) = consumed {
                        return Ok(CodeConsumption::Consumed(sql::code(&row)?));
                    }
                    // Not consumed by us: either spent before (a replay) or unknown.
                    let mut db = self.read().await?;
                    let seen = sqlx::query(sql::FIND_CODE).bind(sql::hash(code_hash)).fetch_optional(db.conn()).await;
                    let seen = db.settle(seen).map_err(db_error("authorization code"))?;
                    Ok(match seen {
                        Some(row) => CodeConsumption::Replayed(sql::code(&row)?),
                        None => CodeConsumption::NotFound,
                    })
                }

                async fn insert_access_token(&self, t: &AccessToken) -> StoreResult<()> {
                    self.insert_access_token_batched(t).await
                }

                async fn find_access_token(
                    &self,
                    token_hash: &TokenHash,
                    now: UnixTime,
                ) -> StoreResult<Option<AccessToken>> {
                    self.find_access_token_batched(token_hash, now).await
                }

                async fn revoke_access_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::REVOKE_ACCESS_TOKEN)
                        .bind(sql::hash(token_hash))
                        .bind(sql::millis(now))
                        .execute(db.conn())
                        .await;
                    let done = db.settle(done).map_err(db_error("access token"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = refresh_query(token).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("refresh token"))?;
                    Ok(())
                }

                async fn find_refresh_token(&self, token_hash: &TokenHash) -> StoreResult<Option<RefreshToken>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_REFRESH_TOKEN)
                        .bind(sql::hash(token_hash))
                        .fetch_optional(db.conn())
                        .await;
                    let row = db.settle(row).map_err(db_error("refresh token"))?;
                    row.map(|r| sql::refresh_token(&r)).transpose()
                }

                async fn rotate_refresh_token(
                    &self,
                    old: &TokenHash,
                    new: &RefreshToken,
                    now: UnixTime,
                ) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let rotated = async {
                        let mut tx = Self::begin(db.conn()).await?;
                        let marked = sqlx::query(sql::MARK_REFRESH_ROTATED)
                            .bind(sql::hash(old))
                            .bind(sql::millis(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error("refresh token"))?;
                        if marked.rows_affected() == 0 {
                            // Already rotated or revoked, or unknown: nothing changed; dropping `tx` rolls back.
                            return Ok(false);
                        }
                        // A failure here (e.g. a conflicting new hash) drops `tx`, which un-marks the old token.
                        refresh_query(new).execute(&mut *tx).await.map_err(db_error("refresh token"))?;
                        tx.commit().await.map_err(db_error("refresh token"))?;
                        Ok(true)
                    }
                    .await;
                    db.settle(rotated)
                }

                async fn revoke_refresh_token(&self, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::REVOKE_REFRESH_TOKEN)
                        .bind(sql::hash(token_hash))
                        .bind(sql::millis(now))
                        .execute(db.conn())
                        .await;
                    let done = db.settle(done).map_err(db_error("refresh token"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl DeviceStore for $store {
                async fn insert_device_grant(&self, grant: &DeviceGrant) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = device_query(sql::INSERT_DEVICE_GRANT, grant).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("user code"))?;
                    Ok(())
                }

                async fn find_device_grant(&self, device_code_hash: &TokenHash) -> StoreResult<Option<DeviceGrant>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_DEVICE_GRANT)
                        .bind(sql::hash(device_code_hash))
                        .fetch_optional(db.conn())
                        .await;
                    let row = db.settle(row).map_err(db_error("device grant"))?;
                    row.map(|r| sql::device_grant(&r)).transpose()
                }

                async fn find_device_grant_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceGrant>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_DEVICE_GRANT_BY_USER_CODE)
                        .bind(user_code)
                        .fetch_optional(db.conn())
                        .await;
                    let row = db.settle(row).map_err(db_error("device grant"))?;
                    row.map(|r| sql::device_grant(&r)).transpose()
                }

                async fn update_device_grant(&self, grant: &DeviceGrant) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = device_query(sql::UPDATE_DEVICE_GRANT, grant).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("user code"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl KeyStore for $store {
                async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::INSERT_SIGNING_KEY)
                        .bind(key.kid.as_str())
                        .bind(key.alg.as_str())
                        .bind(key.private_key.as_slice())
                        .bind(Json(&key.public_jwk))
                        .bind(sql::millis(key.created_at))
                        .bind(sql::millis(key.not_before))
                        .bind(sql::opt_millis(key.retire_at))
                        .bind(sql::opt_millis(key.expires_at))
                        .execute(db.conn())
                        .await;
                    db.settle(done).map_err(db_error("signing key"))?;
                    Ok(())
                }

                async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
                    let mut db = self.read().await?;
                    let rows = sqlx::query(sql::LIST_SIGNING_KEYS).fetch_all(db.conn()).await;
                    let rows = db.settle(rows).map_err(db_error("signing key"))?;
                    rows.iter().map(sql::signing_key).collect()
                }

                async fn retire_signing_key(
                    &self,
                    kid: &str,
                    retire_at: UnixTime,
                    expires_at: UnixTime,
                ) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::RETIRE_SIGNING_KEY)
                        .bind(kid)
                        .bind(sql::millis(retire_at))
                        .bind(sql::millis(expires_at))
                        .execute(db.conn())
                        .await;
                    let done = db.settle(done).map_err(db_error("signing key"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl ReplayStore for $store {
                async fn remember_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::REMEMBER_ONCE)
                        .bind(key)
                        .bind(sql::millis(expires_at))
                        .bind(sql::millis(now))
                        .execute(db.conn())
                        .await;
                    let done = db.settle(done).map_err(db_error("replay entry"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl SessionStore for $store {
                async fn insert_session(&self, session: &LoginSession) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::INSERT_SESSION)
                        .bind(sql::hash(&session.id_hash))
                        .bind(session.user_id.as_str())
                        .bind(sql::millis(session.auth_time))
                        .bind(sql::millis(session.created_at))
                        .bind(sql::millis(session.expires_at))
                        .execute(db.conn())
                        .await;
                    db.settle(done).map_err(db_error("login session"))?;
                    Ok(())
                }

                async fn find_session(&self, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<LoginSession>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_SESSION)
                        .bind(sql::hash(id_hash))
                        .bind(sql::millis(now))
                        .fetch_optional(db.conn())
                        .await;
                    let row = db.settle(row).map_err(db_error("login session"))?;
                    row.map(|r| sql::login_session(&r)).transpose()
                }

                async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::DELETE_SESSION).bind(sql::hash(id_hash)).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("login session"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl ConsentStore for $store {
                async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::UPSERT_CONSENT)
                        .bind(consent.user_id.as_str())
                        .bind(consent.client_id.as_str())
                        .bind(sql::scope(&consent.scope))
                        .bind(sql::resources(&consent.resources))
                        .bind(sql::millis(consent.granted_at))
                        .bind(sql::millis(consent.expires_at))
                        .execute(db.conn())
                        .await;
                    db.settle(done).map_err(db_error("consent"))?;
                    Ok(())
                }

                async fn find_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    now: UnixTime,
                ) -> StoreResult<Option<Consent>> {
                    let mut db = self.read().await?;
                    let row = sqlx::query(sql::FIND_CONSENT)
                        .bind(user_id)
                        .bind(client_id)
                        .bind(sql::millis(now))
                        .fetch_optional(db.conn())
                        .await;
                    let row = db.settle(row).map_err(db_error("consent"))?;
                    row.map(|r| sql::consent(&r)).transpose()
                }

                async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
                    let mut db = self.write().await?;
                    let done = sqlx::query(sql::DELETE_CONSENT).bind(user_id).bind(client_id).execute(db.conn()).await;
                    let done = db.settle(done).map_err(db_error("consent"))?;
                    Ok(done.rows_affected() > 0)
                }
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> &'static str {
                    $backend
                }

                async fn ping(&self) -> StoreResult<()> {
                    let mut db = self.read().await?;
                    let done = sqlx::query(sql::PING).execute(db.conn()).await;
                    db.settle(done).map_err(db_error("ping"))?;
                    Ok(())
                }

                async fn purge_expired(&self, now: UnixTime) -> StoreResult<PurgeReport> {
                    let now = sql::millis(now);
                    let mut db = self.write().await?;
                    let purged = async {
                        let mut tx = Self::begin_purge(db.conn()).await?;
                        // Field order is evaluation order: tokens before their grants, grants before clients.
                        let report = PurgeReport {
                            codes: purge_step(&mut tx, sql::PURGE_CODES, now).await?,
                            access_tokens: purge_step(&mut tx, sql::PURGE_ACCESS_TOKENS, now).await?,
                            refresh_tokens: purge_step(&mut tx, sql::PURGE_REFRESH_TOKENS, now).await?,
                            grants: purge_step(&mut tx, sql::PURGE_GRANTS, now).await?,
                            device_grants: purge_step(&mut tx, sql::PURGE_DEVICE_GRANTS, now).await?,
                            replay_entries: purge_step(&mut tx, sql::PURGE_REPLAY, now).await?,
                            // Before clients, so a consent that expired itself is counted as such.
                            sessions: purge_step(&mut tx, sql::PURGE_SESSIONS, now).await?,
                            consents: purge_step(&mut tx, sql::PURGE_CONSENTS, now).await?,
                            clients: purge_step(&mut tx, sql::PURGE_CLIENTS, now).await?,
                        };
                        tx.commit().await.map_err(db_error("purge"))?;
                        Ok(report)
                    }
                    .await;
                    db.settle(purged)
                }
            }
        };
    };
}
#[cfg(feature = "postgres")]
pub(crate) use impl_sql_store;
