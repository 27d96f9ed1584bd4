-- Who acted, on every version: the actor a verified token proved (with its issuer), or the one
-- the command claimed (no issuer), or nobody named.
ALTER TABLE purchase_order_history
    ADD COLUMN actor_type text, ADD COLUMN actor_id text, ADD COLUMN actor_issuer text;
ALTER TABLE order_history
    ADD COLUMN actor_type text, ADD COLUMN actor_id text, ADD COLUMN actor_issuer text;
