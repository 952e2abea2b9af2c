-- amana-relay SQLite schema 5: a join request carries a MAC of its keys
-- under a key derived from the invite secret, which the relay never holds
-- (docs/protocol.md, "Invite code"). The relay keeps the MAC for the admin
-- that issued the invite, the only party that can check it. Requests
-- recorded before carry none and could never be approved: they are
-- dropped (devices already approved are on the roster).
DELETE FROM join_requests;
ALTER TABLE join_requests ADD COLUMN key_mac BLOB;
