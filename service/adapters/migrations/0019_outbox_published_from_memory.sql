-- The instance that decides a batch publishes its outcomes from memory right after the commit;
-- the outbox row stays until the broker has the message, for crash recovery. `direct` marks a
-- row its instance is publishing: the relay leaves such a row alone until it is older than
-- OUTBOX_SWEEP_AFTER_SECONDS (its instance died, or cannot reach the broker), and publishes
-- every other row at once, as before. Adding a column with a constant default rewrites nothing.
ALTER TABLE outbox ADD COLUMN direct boolean NOT NULL DEFAULT false;
-- A batch asks which of its keys still have rows waiting, so that nothing of a key is published
-- from memory ahead of an older row of the same key; the relay asks whether an earlier row of a
-- topic and key is still being published from memory before it publishes a later one.
CREATE INDEX outbox_message_key ON outbox (message_key, topic, id);
