-- What a reply says of each answered key (outcome, event references, at most 20 errors, as
-- compact JSON), so that a duplicate of a command that asked for a reply is answered as the
-- original was. Kept as long as the key (INBOX_RETENTION_HOURS); null for keys answered before.
-- Adding a nullable column rewrites nothing.
ALTER TABLE inbox ADD COLUMN reply bytea;
