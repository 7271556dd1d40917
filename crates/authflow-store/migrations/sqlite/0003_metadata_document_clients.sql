-- authflow storage, version 3 (SQLite): clients identified by a client ID metadata document URL are stored
-- too (origin 'metadata_document'), so what is issued to them has a client row to belong to.
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt as SQLite's ALTER TABLE
-- documentation lays out. SqliteStore::migrate runs migrations with foreign keys off (they cannot be switched
-- inside the migration's transaction) and checks them all afterwards.
CREATE TABLE clients_new (
    id                      TEXT    NOT NULL PRIMARY KEY,
    secret_hash             BLOB    CHECK (length(secret_hash) = 32),
    registration_token_hash BLOB    CHECK (length(registration_token_hash) = 32),
    metadata                TEXT    NOT NULL CHECK (json_valid(metadata)),
    origin                  TEXT    NOT NULL CHECK (origin IN ('static', 'admin', 'dynamic', 'metadata_document')),
    created_at              INTEGER NOT NULL,
    expires_at              INTEGER,
    disabled                INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;
INSERT INTO clients_new (id, secret_hash, registration_token_hash, metadata, origin, created_at, expires_at, disabled)
    SELECT id, secret_hash, registration_token_hash, metadata, origin, created_at, expires_at, disabled FROM clients;
DROP TABLE clients;
ALTER TABLE clients_new RENAME TO clients;
CREATE INDEX clients_listing ON clients (created_at, id);
CREATE INDEX clients_expiry ON clients (expires_at) WHERE expires_at IS NOT NULL;
