-- Amana device store, schema 1.
-- Every column named `*_sealed` holds XChaCha20-Poly1305 ciphertext of a
-- padded plaintext (see docs/device-store.md). Keys that come from data
-- (case ids, device ids, epochs) are HMAC-SHA256 under the store's index
-- key, so equal values can be found without being readable.

CREATE TABLE meta (
    name TEXT PRIMARY KEY,          -- a fixed label chosen by the program, never data
    value_sealed BLOB NOT NULL
) STRICT;

CREATE TABLE roster_ops (
    idx INTEGER PRIMARY KEY,        -- position in the roster chain
    op_sealed BLOB NOT NULL
) STRICT;

CREATE TABLE epoch_keys (
    slot BLOB PRIMARY KEY,          -- HMAC(index key, epoch)
    key_sealed BLOB NOT NULL
) STRICT;

CREATE TABLE cases (
    case_key BLOB PRIMARY KEY,      -- HMAC(index key, case id)
    doc_sealed BLOB NOT NULL        -- Automerge save() of the case
) STRICT;

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_sealed BLOB NOT NULL      -- (case id, Automerge change) not yet in an envelope
) STRICT;

CREATE TABLE own_log (
    seq INTEGER PRIMARY KEY,        -- this device's envelope sequence number
    envelope_sealed BLOB NOT NULL,  -- the exact envelope bytes, kept until receipted
    receipted INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE peer_heads (
    device_key BLOB PRIMARY KEY,    -- HMAC(index key, device id)
    head_sealed BLOB NOT NULL       -- (device id, seq, envelope id) last applied
) STRICT;

CREATE TABLE receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_sealed BLOB NOT NULL
) STRICT;

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_sealed BLOB NOT NULL      -- envelope bytes and the reason it was refused
) STRICT;
