-- amana-relay SQLite schema 3: device lifecycle. Every column is
-- documented in docs/relay-schema.md.

-- Revocation bounds. Written in the same transaction as the roster
-- operation that revokes the device, and read in the same transaction as
-- every upload, so no envelope beyond the bound can slip in between.
CREATE TABLE revocations (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,             -- 16-byte id of the revoked device
    last_seq INTEGER NOT NULL,        -- last seq of its log the team accepts
    roster_index INTEGER NOT NULL,    -- index of the roster operation that revoked it
    PRIMARY KEY (team, device)
) STRICT;

-- The newest signed recipient announcement of each device: where admins
-- send the next epoch key. Public keys only.
CREATE TABLE recipients (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,             -- 16-byte id of the announcing device
    generation INTEGER NOT NULL,      -- generation of its receiving key
    announcement BLOB NOT NULL,       -- the signed announcement (age recipient, generation, newest epoch held)
    stored_at INTEGER NOT NULL,       -- unix seconds
    PRIMARY KEY (team, device)
) STRICT;

-- Compactions: after a case was shredded, the bodies of envelopes of
-- retired epochs are dropped (each envelope keeps header, signature and the
-- body's SHA-256: a stub, still verifiable and chained). One row per
-- compaction, so an auditor can tell a dropped body from a lost one.
CREATE TABLE compactions (
    team BLOB NOT NULL REFERENCES teams (team),
    below_epoch INTEGER NOT NULL,     -- envelopes of epochs below this one were reduced to stubs
    compacted_at INTEGER NOT NULL,    -- unix seconds
    requested_by BLOB NOT NULL,       -- the admin device that asked
    envelopes INTEGER NOT NULL,       -- how many bodies were dropped
    bytes_freed INTEGER NOT NULL      -- how many bytes that freed
) STRICT;
