-- The event that made each document's current version. An instance that holds a document
-- decoded (service/adapters/document_cache.py) takes it from memory only while the row is at
-- the version and event it saw: a version number alone can come back with other content after
-- Postgres loses committed transactions (a failover with asynchronous replication, a restore
-- to a point in time), an event id (a random UUID) never does. Rows written before stay NULL
-- and are read as ever. Adding a nullable column rewrites nothing.
ALTER TABLE documents ADD COLUMN last_event_id uuid;

-- Any update that does not name a new event (a build before this migration, still running
-- during a rolling upgrade, or a hand-made fix) clears it, so no instance takes such a row for
-- the state it holds. The service's own saves always name a new event and never fire it.
CREATE FUNCTION documents_forget_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_event_id := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER documents_forget_event BEFORE UPDATE ON documents FOR EACH ROW
    WHEN (NEW.last_event_id IS NOT DISTINCT FROM OLD.last_event_id)
    EXECUTE FUNCTION documents_forget_event();
