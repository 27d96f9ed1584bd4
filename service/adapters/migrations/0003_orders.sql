-- Customer orders. Addresses are rows of their own, shared by the orders that use the same one
-- (seed 002: deleting an order keeps its billing address for other orders). Items belong to
-- their order and go with it (ON DELETE CASCADE). History rows name addresses by id only, so an
-- address is stored in exactly one place.
CREATE TABLE addresses (
    address_id   uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    customer_id  text NOT NULL,
    name         text NOT NULL,
    lines        text[] NOT NULL,
    city         text NOT NULL,
    postal_code  text NOT NULL,
    country      char(2) NOT NULL,
    phone        text,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_customer ON addresses (tenant_id, customer_id);

CREATE TABLE orders (
    tenant_id            text NOT NULL,
    order_id             text NOT NULL,
    customer_id          text NOT NULL,
    warehouse_id         text NOT NULL,
    status               text NOT NULL,
    cancel_reason        text,
    version              bigint NOT NULL CHECK (version >= 1),
    voucher_code         text,
    shipping_address_id  uuid NOT NULL REFERENCES addresses (address_id),
    billing_address_id   uuid NOT NULL REFERENCES addresses (address_id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX orders_customer ON orders (tenant_id, customer_id);

CREATE TABLE order_items (
    tenant_id    text NOT NULL,
    order_id     text NOT NULL,
    line_no      int NOT NULL,
    sku          text NOT NULL,
    quantity     int NOT NULL CHECK (quantity >= 1),
    unit_price   numeric(18, 4) NOT NULL CHECK (unit_price >= 0),
    currency     char(3) NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders ON DELETE CASCADE
);

-- At most one live order of a tenant holds a voucher; the row goes when the order is cancelled
-- or deleted, which frees the voucher for reuse.
CREATE TABLE order_vouchers (
    tenant_id     text NOT NULL,
    voucher_code  text NOT NULL,
    order_id      text NOT NULL,
    PRIMARY KEY (tenant_id, voucher_code),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders ON DELETE CASCADE
);

CREATE TABLE order_history (
    tenant_id    text NOT NULL,
    order_id     text NOT NULL,
    version      bigint NOT NULL,
    command_id   uuid NOT NULL,
    event_id     uuid NOT NULL UNIQUE,
    event_type   text NOT NULL,
    document     jsonb NOT NULL,
    shipping_address_id  uuid NOT NULL REFERENCES addresses (address_id),
    billing_address_id   uuid NOT NULL REFERENCES addresses (address_id),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id, version)
);

CREATE TABLE order_tombstones (
    tenant_id     text NOT NULL,
    order_id      text NOT NULL,
    last_version  bigint NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);
