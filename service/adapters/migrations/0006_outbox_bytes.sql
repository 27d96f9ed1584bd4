-- Outbox keys and headers become bytes: a dead letter carries the key and headers it arrived
-- with, and untrusted bytes (a NUL, invalid UTF-8) cannot be stored as text or jsonb. Headers are
-- one value of length-prefixed names and values (service/adapters/headers.py).
ALTER TABLE outbox ALTER COLUMN message_key TYPE bytea USING convert_to(message_key, 'UTF8');
ALTER TABLE outbox ADD COLUMN header_bytes bytea NOT NULL DEFAULT '\x';
UPDATE outbox o SET header_bytes = coalesce((
    SELECT string_agg(
        int4send(octet_length(convert_to(h ->> 0, 'UTF8'))) || convert_to(h ->> 0, 'UTF8')
        || int4send(octet_length(decode(h ->> 1, 'hex'))) || decode(h ->> 1, 'hex'),
        '\x'::bytea ORDER BY n)
    FROM jsonb_array_elements(o.headers) WITH ORDINALITY AS e(h, n)), '\x')
WHERE o.headers <> '[]';
ALTER TABLE outbox DROP COLUMN headers;
ALTER TABLE outbox RENAME COLUMN header_bytes TO headers;
