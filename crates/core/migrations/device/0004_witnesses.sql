-- Amana device store, schema 4: the id of every envelope applied from
-- another device's log, so a witness of that log (carried inside another
-- device's envelope) can be compared with what this device applied
-- (see docs/protocol.md, "witnesses", and docs/device-store.md).

CREATE TABLE peer_log (
    entry_key BLOB PRIMARY KEY,     -- HMAC(index key, device id ‖ seq)
    id_sealed BLOB NOT NULL         -- the id of the envelope applied at that seq
) STRICT;
