-- authflow storage, version 3 (PostgreSQL): clients identified by a client ID metadata document URL are
-- stored too (origin 'metadata_document'), so what is issued to them has a client row to belong to.
ALTER TABLE clients DROP CONSTRAINT clients_origin_check;
ALTER TABLE clients ADD CONSTRAINT clients_origin_check
    CHECK (origin IN ('static', 'admin', 'dynamic', 'metadata_document'));
