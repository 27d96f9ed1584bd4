-- The instance that decides a batch publishes its outcomes from memory right after the commit;
-- the outbox row stays until the broker has the message, for crash recovery. `publisher` names
-- the instance (a random number drawn at its start) that is publishing a row; the relay leaves
-- such a row alone until it is older than OUTBOX_SWEEP_AFTER_SECONDS (its instance died, or
-- cannot reach the broker), and publishes every row without one at once, as before. Adding a
-- nullable column rewrites nothing.
ALTER TABLE outbox ADD COLUMN publisher bigint;
-- A batch asks which of its keys have rows waiting that are not its instance's own, so that
-- nothing of a key is published from memory ahead of an older row of it; the relay asks whether
-- an earlier row of a topic and key is still being published before it publishes a later one.
CREATE INDEX outbox_message_key ON outbox (message_key, topic, id);
