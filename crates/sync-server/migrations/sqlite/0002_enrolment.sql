-- amana-relay SQLite schema 2: enrolment. Every column is documented in
-- docs/relay-schema.md.

CREATE TABLE invites (
    team BLOB NOT NULL REFERENCES teams (team),
    invite_id BLOB NOT NULL,          -- SHA-256 of the invite secret; the secret is never sent here
    role INTEGER NOT NULL,            -- role code the invite grants
    expires_at INTEGER NOT NULL,      -- unix seconds
    used_at INTEGER,                  -- unix seconds a device joined with it; NULL while unused
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team, invite_id)
) STRICT;

CREATE TABLE join_requests (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,             -- 16-byte device id of the requester
    signing_key BLOB NOT NULL,        -- its Ed25519 public key
    recipient TEXT NOT NULL,          -- its age X25519 public recipient
    invite_id BLOB NOT NULL,          -- the invite it used
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (team, device)
) STRICT;

CREATE TABLE key_envelopes (
    team BLOB NOT NULL REFERENCES teams (team),
    device BLOB NOT NULL,             -- the device the epoch key is delivered to
    epoch INTEGER NOT NULL,
    key_envelope BLOB NOT NULL,       -- admin-signed age ciphertext of the epoch key to that device
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (team, device, epoch)
) STRICT;
