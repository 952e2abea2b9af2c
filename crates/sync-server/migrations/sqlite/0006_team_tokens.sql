-- amana-relay SQLite schema 6: team creation needs a token the operator
-- issued (`amana-relay team-token`; docs/relay-api.md, "POST /v1/teams").
-- Only the token's SHA-256 is kept; a token is single use and expires.
CREATE TABLE team_tokens (
    hash BLOB PRIMARY KEY,        -- SHA-256 of the token
    expires_at INTEGER NOT NULL,  -- unix seconds
    used_at INTEGER               -- when a team was created with it
) STRICT;
