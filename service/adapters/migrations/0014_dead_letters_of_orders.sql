-- A sealed dead letter is tied to the order it names as well as to its customer, so erasing an
-- order (order.redact, order.delete) destroys its letters' keys, and erasing a customer destroys
-- those of every letter about their orders, also when the letter itself named no customer (an
-- order.update, say). When a letter names no customer, the stored order it names supplies one.
ALTER TABLE dead_letter_keys ADD COLUMN order_id text;
CREATE INDEX dead_letter_keys_order ON dead_letter_keys (tenant_id, order_id);
