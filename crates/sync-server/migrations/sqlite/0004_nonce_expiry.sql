-- amana-relay SQLite schema 4: every request deletes the expired nonces;
-- without this index that was a scan of every nonce of the last minutes
-- on each request, under the store's lock.
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
