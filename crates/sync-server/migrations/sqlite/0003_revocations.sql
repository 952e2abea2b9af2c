-- amana-relay SQLite schema 3: revocation bounds. Every column is
-- documented in docs/relay-schema.md.
--
-- Written in the same transaction as the roster operation that revokes the
-- device, and read in the same transaction as every upload, so no envelope
-- beyond the bound can slip in between the revocation and the next upload.

CREATE TABLE revocations (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,             -- 16-byte id of the revoked device
    last_seq INTEGER NOT NULL,        -- last seq of its log the team accepts
    roster_index INTEGER NOT NULL,    -- index of the roster operation that revoked it
    PRIMARY KEY (team, device)
) STRICT;
