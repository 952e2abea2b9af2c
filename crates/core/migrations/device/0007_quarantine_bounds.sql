-- Amana device store, schema 7: the quarantine within bounds a relay
-- cannot push (docs/device-store.md, "Quarantine"). `whole` says whether
-- the row keeps the whole envelope or only its stub (header, signature,
-- body hash); `signed` whether a roster device's signature vouches for it
-- (evidence nobody signed is reduced and removed first). What is removed
-- is counted by code in the sealed meta entry `quarantine_summary`.

ALTER TABLE quarantine ADD COLUMN whole INTEGER NOT NULL DEFAULT 1;
ALTER TABLE quarantine ADD COLUMN signed INTEGER NOT NULL DEFAULT 1;
