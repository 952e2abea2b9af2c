-- Amana device store, schema 6: integrity alarms, kept until an admin
-- device acknowledges them (docs/sync.md, "Alarms"). Each row is one alarm:
-- what was detected, about which device and seq, who raised it (this
-- device, or another device whose report reached this admin device), when
-- it was first and last seen, whether this device has reported it to the
-- office, and who acknowledged it.

CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,          -- local row number
    entry_sealed BLOB NOT NULL       -- the alarm record (JSON)
) STRICT;
