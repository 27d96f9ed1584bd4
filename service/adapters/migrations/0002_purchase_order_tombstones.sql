-- What a deleted purchase order leaves: enough to answer later commands with "was deleted" and
-- to refuse reuse of its id, and none of its data.
CREATE TABLE purchase_order_tombstones (
    tenant_id          text NOT NULL,
    purchase_order_id  text NOT NULL,
    last_version       bigint NOT NULL,
    deleted_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purchase_order_id)
);
