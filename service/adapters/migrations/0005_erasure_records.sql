-- Customers erased at their request: later commands that would store personal data for them are
-- refused (subject_erased). `redactions` numbers the receipts published for the customer.
CREATE TABLE erased_customers (
    tenant_id        text NOT NULL,
    customer_id      text NOT NULL,
    redactions       int NOT NULL DEFAULT 1,
    first_erased_at  timestamptz NOT NULL DEFAULT now(),
    last_erased_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);

-- Dead letters of families that carry personal data are published sealed, each under its own
-- data key. The key is destroyed when its retention ends, or with the subject's keys when the
-- raw message named a customer who is then erased.
CREATE TABLE dead_letter_keys (
    key_id         uuid PRIMARY KEY,
    tenant_id      text,
    customer_id    text,
    wrapped_key    bytea NOT NULL,
    master_key_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX dead_letter_keys_expiry ON dead_letter_keys (expires_at);
CREATE INDEX dead_letter_keys_customer ON dead_letter_keys (tenant_id, customer_id);
