-- The event that made each document's current version. An instance that holds a document
-- decoded (service/adapters/document_cache.py) takes it from memory only while this is the
-- event it saw: a version number alone can come back with other content after Postgres loses
-- committed transactions (a failover with asynchronous replication, a restore to a point in
-- time), an event id (a random UUID) never does. Rows written before stay NULL and are read
-- as ever. Adding a nullable column rewrites nothing.
ALTER TABLE documents ADD COLUMN last_event_id uuid;
