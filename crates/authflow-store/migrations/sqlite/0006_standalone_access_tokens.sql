-- authflow storage, version 6 (SQLite): an access token may stand without a grant.
--
-- A client_credentials token is the whole of what its client was granted: it had a grant of its own that
-- held only it. Such tokens now have no grant (grant_id NULL): one row and four B-trees per issuance instead
-- of two rows and eight, and nothing to revoke but the token. Tokens of user grants keep theirs. The grant
-- index leaves the NULLs out; a grant's deletion still finds its tokens through it (`grant_id = ?` implies
-- `grant_id IS NOT NULL`).
--
-- The table is rebuilt as SQLite's ALTER TABLE documentation lays out (a column's NOT NULL cannot be
-- dropped in place); SqliteStore::migrate runs this with foreign keys off and checks them all afterwards.
CREATE TABLE access_tokens_new (
    token_hash BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    grant_id   TEXT    REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
INSERT INTO access_tokens_new (rowid, token_hash, grant_id, client_id, subject, scope, resources, issued_at,
                               expires_at, revoked_at)
    SELECT rowid, token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, revoked_at
    FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_new RENAME TO access_tokens;
CREATE INDEX access_tokens_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
