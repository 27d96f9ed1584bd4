-- Documents whose family keeps them as one JSON document (purchase orders, and any family that
-- registers a codec) share three tables: a document's kind is a column, so a new family needs
-- no migration of its own. Families with relational storage (customer orders, with their
-- encrypted personal data) keep their tables.
--
-- The old tables are locked first, so no write of a running older instance can land between
-- the copy and the drop. An earlier build's writes fail against the views left behind (its
-- upserts name keys the views do not have): stop its instances before this migration runs (a
-- rolling upgrade across it is not supported).
LOCK TABLE purchase_orders, purchase_order_history, purchase_order_tombstones
    IN ACCESS EXCLUSIVE MODE;
CREATE TABLE documents (
    kind         text NOT NULL,
    tenant_id    text NOT NULL,
    document_id  text NOT NULL,
    status       text NOT NULL,
    version      bigint NOT NULL CHECK (version >= 1),
    document     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, tenant_id, document_id)
);

CREATE TABLE document_history (
    kind          text NOT NULL,
    tenant_id     text NOT NULL,
    document_id   text NOT NULL,
    version       bigint NOT NULL,
    command_id    uuid NOT NULL,
    event_id      uuid NOT NULL UNIQUE,
    event_type    text NOT NULL,
    document      jsonb NOT NULL,
    actor_type    text,
    actor_id      text,
    actor_issuer  text,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, tenant_id, document_id, version)
);

-- What a deleted document leaves: enough to answer later commands with "was deleted" and to
-- refuse reuse of its id, and none of its data.
CREATE TABLE document_tombstones (
    kind          text NOT NULL,
    tenant_id     text NOT NULL,
    document_id   text NOT NULL,
    last_version  bigint NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, tenant_id, document_id)
);

INSERT INTO documents (kind, tenant_id, document_id, status, version, document, created_at,
                       updated_at)
SELECT 'purchase-orders', tenant_id, purchase_order_id, status, version, document, created_at,
       updated_at
FROM purchase_orders;

INSERT INTO document_history (kind, tenant_id, document_id, version, command_id, event_id,
                              event_type, document, actor_type, actor_id, actor_issuer,
                              recorded_at)
SELECT 'purchase-orders', tenant_id, purchase_order_id, version, command_id, event_id,
       event_type, document, actor_type, actor_id, actor_issuer, recorded_at
FROM purchase_order_history;

INSERT INTO document_tombstones (kind, tenant_id, document_id, last_version, deleted_at)
SELECT 'purchase-orders', tenant_id, purchase_order_id, last_version, deleted_at
FROM purchase_order_tombstones;

DROP TABLE purchase_orders, purchase_order_history, purchase_order_tombstones;

-- The old names stay readable, for reports and operators' queries written against them.
CREATE VIEW purchase_orders AS
SELECT tenant_id, document_id AS purchase_order_id, status, version, document, created_at,
       updated_at
FROM documents WHERE kind = 'purchase-orders';

CREATE VIEW purchase_order_history AS
SELECT tenant_id, document_id AS purchase_order_id, version, command_id, event_id, event_type,
       document, actor_type, actor_id, actor_issuer, recorded_at
FROM document_history WHERE kind = 'purchase-orders';

CREATE VIEW purchase_order_tombstones AS
SELECT tenant_id, document_id AS purchase_order_id, last_version, deleted_at
FROM document_tombstones WHERE kind = 'purchase-orders';
