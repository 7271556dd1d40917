-- authflow storage, version 5 (SQLite): tables laid out so that issuing a token appends to its B-trees
-- instead of landing on a random page of each.
--
-- Grant ids now start with their creation time. `grants` is keyed by its id alone (WITHOUT ROWID): one
-- B-tree, appended to, where a rowid table kept a second one for the id. The token tables become rowid tables
-- with a UNIQUE token hash: their secondary indexes (grant, client, expiry) then end with the rowid, which
-- grows, rather than with the random hash. An issuance now writes one random leaf (the hash's) instead of
-- four, and each commit puts a fraction of the pages into the WAL.
--
-- Tables are rebuilt as SQLite's ALTER TABLE documentation lays out; SqliteStore::migrate runs this with
-- foreign keys off and checks them all afterwards.
CREATE TABLE grants_new (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;
INSERT INTO grants_new (id, client_id, subject, created_at, expires_at, revoked_at)
    SELECT id, client_id, subject, created_at, expires_at, revoked_at FROM grants;
DROP TABLE grants;
ALTER TABLE grants_new RENAME TO grants;
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_expiry ON grants (expires_at);
CREATE INDEX grants_subject ON grants (subject) WHERE subject IS NOT NULL;

CREATE TABLE access_tokens_new (
    token_hash BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
INSERT INTO access_tokens_new (token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at,
                               revoked_at)
    SELECT token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, revoked_at
    FROM access_tokens ORDER BY issued_at;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_new RENAME TO access_tokens;
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens_new (
    token_hash BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject    TEXT,
    scope      TEXT,
    resources  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
) STRICT;
INSERT INTO refresh_tokens_new (token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at,
                                rotated_at, revoked_at)
    SELECT token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, rotated_at, revoked_at
    FROM refresh_tokens ORDER BY issued_at;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
