-- A state topic's tombstone is a Kafka record with a null value (the document was deleted or
-- erased: compaction then drops its key), so an outbox row may have no payload. Dropping a
-- NOT NULL constraint rewrites nothing.
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
