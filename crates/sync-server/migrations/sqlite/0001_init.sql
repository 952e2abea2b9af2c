-- amana-relay SQLite schema 1. Every column is documented in
-- docs/relay-schema.md; the relay stores nothing else.

CREATE TABLE teams (
    team BLOB PRIMARY KEY,            -- 16-byte team id
    created_at INTEGER NOT NULL,      -- unix seconds
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    next_cursor INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE roster_ops (
    team BLOB NOT NULL REFERENCES teams (team),
    idx INTEGER NOT NULL,             -- position in the chain
    op BLOB NOT NULL,                 -- signed roster operation (public keys, encrypted labels)
    PRIMARY KEY (team, idx)
) STRICT;

CREATE TABLE envelopes (
    team BLOB NOT NULL REFERENCES teams (team),
    cursor INTEGER NOT NULL,          -- team-wide order of acceptance, from 1
    device BLOB NOT NULL,             -- 16-byte device id (from the header)
    seq INTEGER NOT NULL,             -- per-device sequence (from the header)
    epoch INTEGER NOT NULL,           -- epoch (from the header)
    envelope_id BLOB NOT NULL,        -- SHA-256 of the envelope
    envelope BLOB NOT NULL,           -- the signed envelope: header, signature, age ciphertext
    accepted_at INTEGER NOT NULL,     -- unix seconds
    PRIMARY KEY (team, cursor),
    UNIQUE (team, device, seq)
) STRICT;

CREATE TABLE heads (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,
    seq INTEGER NOT NULL,             -- last accepted seq
    envelope_id BLOB NOT NULL,        -- its SHA-256
    PRIMARY KEY (team, device)
) STRICT;

CREATE TABLE equivocations (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,
    seq INTEGER NOT NULL,
    envelope_id BLOB NOT NULL,        -- SHA-256 of the conflicting envelope
    envelope BLOB NOT NULL,           -- the conflicting envelope, kept as evidence
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (team, device, seq, envelope_id)
) STRICT;

CREATE TABLE request_nonces (
    device BLOB NOT NULL,
    nonce BLOB NOT NULL,              -- random 16 bytes chosen by the client
    expires_at INTEGER NOT NULL,      -- unix seconds; rows are deleted after this
    PRIMARY KEY (device, nonce)
) STRICT;
