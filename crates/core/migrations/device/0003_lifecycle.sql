-- Amana device store, schema 3: rotating receiving keys and shredded
-- cases (see docs/device-store.md).

CREATE TABLE receiving_keys (
    generation INTEGER PRIMARY KEY, -- generation of the receiving identity
    key_sealed BLOB NOT NULL,       -- the age X25519 identity that opens key envelopes
    used INTEGER NOT NULL DEFAULT 0 -- 1 once it has opened a delivered epoch key
) STRICT;

CREATE TABLE shredded (
    case_key BLOB PRIMARY KEY,      -- HMAC(index key, case id)
    entry_sealed BLOB NOT NULL      -- tombstone: case id, shredding device, time, reason code
) STRICT;
