-- authflow storage, version 1 (SQLite).
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch; credentials are stored only as their
-- SHA-256 (BLOB, 32 bytes); a scope is its space-delimited string, NULL when absent; RFC 8707 resources are
-- a JSON array of strings. Everything issued to a client cascades from it, so deleting a client deletes its
-- grants, codes, tokens and device authorizations; deleting a grant deletes its tokens.
-- Tables keyed by a hash are WITHOUT ROWID: a lookup by hash is then a single B-tree descent.

CREATE TABLE clients (
    id                      TEXT    NOT NULL PRIMARY KEY,
    secret_hash             BLOB    CHECK (length(secret_hash) = 32),
    registration_token_hash BLOB    CHECK (length(registration_token_hash) = 32),
    metadata                TEXT    NOT NULL CHECK (json_valid(metadata)),
    origin                  TEXT    NOT NULL CHECK (origin IN ('static', 'admin', 'dynamic')),
    created_at              INTEGER NOT NULL,
    expires_at              INTEGER,
    disabled                INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;
CREATE INDEX clients_listing ON clients (created_at, id);
CREATE INDEX clients_expiry ON clients (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;

CREATE TABLE grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_expiry ON grants (expires_at);

-- grant_id is not a foreign key: the code is issued before its grant's tokens exist, and the caller decides
-- when the grant row is written. Codes live for minutes and are purged on expiry.
CREATE TABLE authorization_codes (
    code_hash             BLOB    NOT NULL PRIMARY KEY CHECK (length(code_hash) = 32),
    grant_id              TEXT    NOT NULL,
    client_id             TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject               TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    scope                 TEXT,
    resources             TEXT    NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL,
    nonce                 TEXT,
    auth_time             INTEGER NOT NULL,
    issued_at             INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    consumed_at           INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX authorization_codes_client ON authorization_codes (client_id);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- status + subject encode authflow_core::device::DeviceStatus; subject is set exactly when approved.
CREATE TABLE device_grants (
    device_code_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(device_code_hash) = 32),
    user_code        TEXT    NOT NULL UNIQUE,
    client_id        TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope            TEXT,
    resources        TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    subject          TEXT,
    interval_secs    INTEGER NOT NULL,
    last_polled_at   INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    CHECK ((status = 'approved') = (subject IS NOT NULL))
) STRICT, WITHOUT ROWID;
CREATE INDEX device_grants_client ON device_grants (client_id);
CREATE INDEX device_grants_expiry ON device_grants (expires_at);

CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    alg         TEXT    NOT NULL,
    private_key BLOB    NOT NULL,
    public_jwk  TEXT    NOT NULL CHECK (json_valid(public_jwk)),
    created_at  INTEGER NOT NULL,
    not_before  INTEGER NOT NULL,
    retire_at   INTEGER,
    expires_at  INTEGER
) STRICT;

CREATE TABLE replay_guard (
    key        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX replay_guard_expiry ON replay_guard (expires_at);
