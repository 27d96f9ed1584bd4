-- Inbox keys of admitted commands are scoped: `<family>/<tenant_id>/<command_id>`, claimed only
-- once the command has passed the token gate. A message in another family or tenant, or one
-- the gate refused, can no longer take a command_id from its owner. An invalid command is keyed
-- by its content (`invalid/<family>/<sha-256 of its bytes>`); an unreadable or refused message
-- by where it was read (`kafka:<topic/partition/offset@timestamp>`), as unreadable ones were.
--
-- Rows written before this change are keyed by the bare command_id. Those of accepted commands
-- whose history remains are moved to their scoped key here, so a re-send of one stays a
-- duplicate. The rest (refusals, commands whose document was deleted, inbox_reuse rows) keep
-- the old key until INBOX_RETENTION_HOURS removes them: a re-send of one of those within that
-- window is decided again.
UPDATE inbox
SET message_key = 'purchase-orders/' || h.tenant_id || '/' || inbox.message_key
FROM (SELECT DISTINCT tenant_id, command_id FROM purchase_order_history) AS h
WHERE inbox.message_key = h.command_id::text;

UPDATE inbox
SET message_key = 'orders/' || h.tenant_id || '/' || inbox.message_key
FROM (SELECT DISTINCT tenant_id, command_id FROM order_history) AS h
WHERE inbox.message_key = h.command_id::text;

