-- Amana device store, schema 8: no lifetime counters at rest
-- (docs/device-store.md, "What the files still show"). AUTOINCREMENT kept
-- the largest id ever used of the outbox, receipts and quarantine in
-- `sqlite_sequence`, in plaintext: how many changes, syncs and refusals a
-- device has ever seen. The tables are rebuilt without it (ids are still
-- allocated as one more than the largest present) and the counters erased.

CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
    entry_sealed BLOB NOT NULL      -- (case id, Automerge change) not yet in an envelope
) STRICT;
INSERT INTO outbox_new (id, entry_sealed) SELECT id, entry_sealed FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

CREATE TABLE receipts_new (
    id INTEGER PRIMARY KEY,
    receipt_sealed BLOB NOT NULL
) STRICT;
INSERT INTO receipts_new (id, receipt_sealed) SELECT id, receipt_sealed FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_new RENAME TO receipts;

CREATE TABLE quarantine_new (
    id INTEGER PRIMARY KEY,
    entry_sealed BLOB NOT NULL,     -- envelope bytes (or stub) and the reason it was refused
    whole INTEGER NOT NULL DEFAULT 1,
    signed INTEGER NOT NULL DEFAULT 1
) STRICT;
INSERT INTO quarantine_new (id, entry_sealed, whole, signed)
    SELECT id, entry_sealed, whole, signed FROM quarantine;
DROP TABLE quarantine;
ALTER TABLE quarantine_new RENAME TO quarantine;

DELETE FROM sqlite_sequence;
