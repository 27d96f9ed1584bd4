-- Inbox: one row per message key (a command_id, or the Kafka coordinates of a body with none).
-- Claimed first in every command transaction, so a redelivered command finds its answer here.
CREATE TABLE inbox (
    message_key   text PRIMARY KEY,
    request_hash  bytea NOT NULL,
    outcome       text CHECK (outcome IN ('accepted', 'rejected', 'dead_lettered', 'parked')),
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON inbox (received_at);

-- Every distinct reuse of a key with other content is refused exactly once.
CREATE TABLE inbox_reuse (
    message_key   text NOT NULL,
    request_hash  bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_key, request_hash)
);

CREATE TABLE purchase_orders (
    tenant_id          text NOT NULL,
    purchase_order_id  text NOT NULL,
    status             text NOT NULL,
    version            bigint NOT NULL CHECK (version >= 1),
    document           jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purchase_order_id)
);

CREATE TABLE purchase_order_history (
    tenant_id          text NOT NULL,
    purchase_order_id  text NOT NULL,
    version            bigint NOT NULL,
    command_id         uuid NOT NULL,
    event_id           uuid NOT NULL UNIQUE,
    event_type         text NOT NULL,
    document           jsonb NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purchase_order_id, version)
);

-- Transactional outbox. Rows of one key are inserted while the document is locked, so id order
-- is commit order per key; the relay publishes in id order and never skips an unpublished row.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic         text NOT NULL,
    message_key   text NOT NULL,
    headers       jsonb NOT NULL DEFAULT '[]',
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
