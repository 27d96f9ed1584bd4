-- Who replayed or purged a dead letter (`--operator`): a replay now carries the letter's
-- recorded authority rather than the operator's token, so the operator is named here instead.
-- Null for actions recorded before this column existed. One row per letter and action still.
ALTER TABLE dead_letter_actions ADD COLUMN operator text;
