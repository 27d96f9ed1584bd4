-- The relay deletes outbox rows once the broker has them, so the table holds only what is still
-- to be published: it stays small however long the service runs.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_unpublished;
DROP INDEX outbox_published_at;
ALTER TABLE outbox DROP COLUMN published_at;
