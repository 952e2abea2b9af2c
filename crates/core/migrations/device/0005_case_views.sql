-- Amana device store, schema 5: each case's view (the typed record and its
-- conflicts, as `amana cases list` shows it) sealed beside its document,
-- written in the same statement as the document, so listing many cases
-- needs no Automerge work (see docs/device-store.md and
-- docs/performance.md). NULL where a document does not read as a case, or
-- for rows written before this schema: the view is then read from the
-- document.

ALTER TABLE cases ADD COLUMN view_sealed BLOB;
