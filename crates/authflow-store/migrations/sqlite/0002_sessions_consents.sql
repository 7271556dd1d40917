-- authflow storage, version 2 (SQLite): browser sign-ins and remembered consents for the authorization
-- endpoint. Same conventions as version 1. Both belong to a user and go when the user is deleted; a consent
-- also goes with its client.

-- The session id lives only in the browser's cookie; this keeps its SHA-256.
CREATE TABLE login_sessions (
    id_hash    BLOB    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX login_sessions_user ON login_sessions (user_id);
CREATE INDEX login_sessions_expiry ON login_sessions (expires_at);

-- One per user and client; approving again replaces it.
CREATE TABLE consents (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX consents_expiry ON consents (expires_at);
