-- A verified token bound to a command (its jti is the command_id) authorizes one request: the
-- first message it is seen on, in its family. Seen again on that same request (a redelivery, a
-- re-send) it still counts; on any other (another payload, another family, a dry run turned
-- real) it is refused. Rows are kept as long as inbox keys (INBOX_RETENTION_HOURS), which is
-- longer than any token may live (AUTH_MAX_TOKEN_LIFETIME_SECONDS), and deleted with them.
-- token_id is `<tenant>/<role>:<subject>/<jti>`: a jti is a command_id its sender chose, so it
-- names a token only together with whose it is.
CREATE TABLE token_uses (
    issuer    text        NOT NULL,
    token_id  text        NOT NULL,
    request   text        NOT NULL,
    used_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, token_id)
);
CREATE INDEX token_uses_used_at ON token_uses (used_at);
