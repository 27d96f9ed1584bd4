-- Personal data is stored only encrypted (envelope encryption, see service/adapters/crypto.py).
-- One data key per order and field group (shipping_address, billing_address, contact), stored
-- wrapped by the master key from configuration. Each record is one version of one group's data;
-- orders and history rows point at the records that were current at their version, so erasing a
-- group (destroying its key) erases every earlier version too.
CREATE TABLE data_keys (
    key_id         uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    order_id       text NOT NULL,
    customer_id    text NOT NULL,
    field_group    text NOT NULL CHECK (field_group IN ('shipping_address', 'billing_address', 'contact')),
    wrapped_key    bytea NOT NULL,
    master_key_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, order_id, field_group)
);
CREATE INDEX data_keys_customer ON data_keys (tenant_id, customer_id);

CREATE TABLE personal_data (
    record_id    uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    order_id     text NOT NULL,
    field_group  text NOT NULL,
    key_id       uuid NOT NULL,
    ciphertext   bytea,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX personal_data_order ON personal_data (tenant_id, order_id);

-- The plaintext address rows of 0003 give way to encrypted records. Each order holds its own
-- records under its own keys: a row shared by several orders could not be erased for one of them.
ALTER TABLE orders
    DROP COLUMN shipping_address_id,
    DROP COLUMN billing_address_id,
    ADD COLUMN shipping_record uuid NOT NULL,
    ADD COLUMN billing_record uuid NOT NULL,
    ADD COLUMN contact_record uuid NOT NULL,
    ADD COLUMN redacted_groups text[] NOT NULL DEFAULT '{}',
    ADD COLUMN redaction_pending text[] NOT NULL DEFAULT '{}';
ALTER TABLE order_history
    DROP COLUMN shipping_address_id,
    DROP COLUMN billing_address_id,
    ADD COLUMN shipping_record uuid NOT NULL,
    ADD COLUMN billing_record uuid NOT NULL,
    ADD COLUMN contact_record uuid NOT NULL;
DROP TABLE addresses;
