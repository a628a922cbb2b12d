-- The platform's one place for household keys (schema "keyring"): one AES-256 key per
-- household, created with its enrolment, deleted by its erasure. Deleting the row is
-- what makes every sealed copy of the household's personal fields unreadable.
CREATE TABLE household_keys (
    household_id  uuid PRIMARY KEY,
    key           bytea NOT NULL CHECK (length(key) = 32),
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Which households were erased and when: ids only, so that a key is never created again
-- for an erased household (a replayed enrolment) and readers can tell "erased" from
-- "unknown".
CREATE TABLE destroyed_keys (
    household_id  uuid PRIMARY KEY,
    destroyed_at  timestamptz NOT NULL DEFAULT now()
);
