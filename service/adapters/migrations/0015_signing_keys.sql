-- Keys the service signs with (dead letters and their replays): random, kept here wrapped by
-- the master key like data keys, so that a master-key rotation re-wraps them and what was
-- signed before stays verifiable after the old master key is gone. A rotation also adds a new
-- one (someone who held the old master key could otherwise still sign): the newest signs,
-- every one verifies.
CREATE TABLE signing_keys (
    key_id         uuid PRIMARY KEY,
    purpose        text NOT NULL,
    wrapped_key    bytea NOT NULL,
    master_key_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at);
