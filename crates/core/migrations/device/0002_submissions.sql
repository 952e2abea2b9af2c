-- Amana device store, schema 2: what an intake-role device submitted.
-- An intake device keeps no readable copy of a case once the relay has
-- receipted it; this table lets it show "submitted, receipt N".

CREATE TABLE submissions (
    case_key BLOB PRIMARY KEY,      -- HMAC(index key, case id)
    entry_sealed BLOB NOT NULL      -- (case id, seq of the envelope that first carried it)
) STRICT;
