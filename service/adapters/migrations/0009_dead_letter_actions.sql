-- What operators did with dead letters (`order-service dead-letters replay` and `purge`): Kafka
-- cannot change a record, so the actions are kept beside it, by its position.
CREATE TABLE dead_letter_actions (
    topic       text        NOT NULL,
    partition   int         NOT NULL,
    "offset"    bigint      NOT NULL,
    action      text        NOT NULL CHECK (action IN ('replayed', 'purged')),
    acted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset", action)
);
