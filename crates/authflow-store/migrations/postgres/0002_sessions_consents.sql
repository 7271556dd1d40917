-- authflow storage, version 2 (PostgreSQL): browser sign-ins and remembered consents for the authorization
-- endpoint. Same conventions as version 1. Both belong to a user and go when the user is deleted; a consent
-- also goes with its client.

-- The session id lives only in the browser's cookie; this keeps its SHA-256.
CREATE TABLE login_sessions (
    id_hash    BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);
CREATE INDEX login_sessions_expiry ON login_sessions (expires_at);

-- One per user and client; approving again replaces it.
CREATE TABLE consents (
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT,
    resources  TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX consents_expiry ON consents (expires_at);
