-- authflow storage, version 6 (PostgreSQL; its schema had no version 5, which only rebuilt SQLite's tables):
-- an access token may stand without a grant.
--
-- A client_credentials token is the whole of what its client was granted: it had a grant of its own that
-- held only it. Such tokens now have no grant (grant_id NULL): one row per issuance instead of two, and
-- nothing to revoke but the token. Tokens of user grants keep theirs. The grant index leaves the NULLs out.
ALTER TABLE access_tokens ALTER COLUMN grant_id DROP NOT NULL;
DROP INDEX access_tokens_grant;
CREATE INDEX access_tokens_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
