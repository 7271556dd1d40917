-- authflow storage, version 1 (PostgreSQL).
--
-- Conventions: times are BIGINT milliseconds since the Unix epoch; credentials are stored only as their
-- SHA-256 (BYTEA, 32 bytes); a scope is its space-delimited string, NULL when absent; RFC 8707 resources are
-- a JSON array of strings (TEXT). Everything issued to a client cascades from it, so deleting a client deletes
-- its grants, codes, tokens and device authorizations; deleting a grant deletes its tokens.
-- Identifiers that are listed in order use the "C" collation, so order is by bytes whatever the database
-- locale, as in the other backends.

CREATE TABLE clients (
    id                      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    secret_hash             BYTEA   CHECK (octet_length(secret_hash) = 32),
    registration_token_hash BYTEA   CHECK (octet_length(registration_token_hash) = 32),
    metadata                JSONB   NOT NULL,
    origin                  TEXT    NOT NULL CHECK (origin IN ('static', 'admin', 'dynamic')),
    created_at              BIGINT  NOT NULL,
    expires_at              BIGINT,
    disabled                BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX clients_listing ON clients (created_at, id);
CREATE INDEX clients_expiry ON clients (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT,
    created_at    BIGINT  NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE grants (
    id         TEXT   NOT NULL PRIMARY KEY,
    client_id  TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_expiry ON grants (expires_at);

-- grant_id is not a foreign key: the code is issued before its grant's tokens exist, and the caller decides
-- when the grant row is written. Codes live for minutes and are purged on expiry.
CREATE TABLE authorization_codes (
    code_hash             BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    grant_id              TEXT   NOT NULL,
    client_id             TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject               TEXT   NOT NULL,
    redirect_uri          TEXT   NOT NULL,
    scope                 TEXT,
    resources             TEXT   NOT NULL,
    code_challenge        TEXT   NOT NULL,
    code_challenge_method TEXT   NOT NULL,
    nonce                 TEXT,
    auth_time             BIGINT NOT NULL,
    issued_at             BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    consumed_at           BIGINT
);
CREATE INDEX authorization_codes_client ON authorization_codes (client_id);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    grant_id   TEXT   NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    grant_id   TEXT   NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- status + subject encode authflow_core::device::DeviceStatus; subject is set exactly when approved.
CREATE TABLE device_grants (
    device_code_hash BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(device_code_hash) = 32),
    user_code        TEXT   NOT NULL UNIQUE,
    client_id        TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope            TEXT,
    resources        TEXT   NOT NULL,
    status           TEXT   NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    subject          TEXT,
    interval_secs    BIGINT NOT NULL,
    last_polled_at   BIGINT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    revision         BIGINT NOT NULL,
    CHECK ((status = 'approved') = (subject IS NOT NULL))
);
CREATE INDEX device_grants_client ON device_grants (client_id);
CREATE INDEX device_grants_expiry ON device_grants (expires_at);

CREATE TABLE signing_keys (
    kid         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    alg         TEXT   NOT NULL,
    private_key BYTEA  NOT NULL,
    public_jwk  JSONB  NOT NULL,
    created_at  BIGINT NOT NULL,
    not_before  BIGINT NOT NULL,
    retire_at   BIGINT,
    expires_at  BIGINT
);

CREATE TABLE replay_guard (
    key        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_guard_expiry ON replay_guard (expires_at);
