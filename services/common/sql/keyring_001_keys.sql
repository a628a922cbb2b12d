-- The platform's one place for household keys (schema "keyring"): one AES-256 key per
-- household, created with its enrolment. An erasure marks it (destroy_after: the grace
-- period in which consumers still apply the household's events in flight) and the
-- sweep then deletes the row: that is what makes every sealed copy of the household's
-- personal fields unreadable.
CREATE TABLE household_keys (
    household_id   uuid PRIMARY KEY,
    key            bytea NOT NULL CHECK (length(key) = 32),
    created_at     timestamptz NOT NULL DEFAULT now(),
    destroy_after  timestamptz
);
CREATE INDEX household_keys_to_destroy ON household_keys (destroy_after) WHERE destroy_after IS NOT NULL;
-- Which households were erased and when: ids only, so that a key is never created again
-- for an erased household (a replayed enrolment).
CREATE TABLE destroyed_keys (
    household_id  uuid PRIMARY KEY,
    erased_at     timestamptz NOT NULL DEFAULT now()
);
