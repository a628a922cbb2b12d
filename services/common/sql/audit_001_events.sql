-- Platform-wide audit trail (schema "audit"): who did what to which household, for the
-- data protection officer and incident reviews. One row per command, accepted or refused,
-- and per read of a household or of a report. Ids and closed labels only, never what a
-- request carried: `actor` is a token's label, `kafka:<topic>` for a bus command or a
-- job's name; `token_id` the token's short non-secret id; `household_id` pseudonymous;
-- `outcome` is `accepted` or `rejected:<kind>`. Purged after a retention period
-- (`python -m services.common.audit purge`).
CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor           text NOT NULL,
    token_id        text,
    service         text NOT NULL,
    action          text NOT NULL,
    household_id    uuid,
    object_id       text,
    outcome         text NOT NULL,
    correlation_id  text
);
CREATE INDEX events_household ON events (household_id, at) WHERE household_id IS NOT NULL;
CREATE INDEX events_actor ON events (actor, at);
CREATE INDEX events_at ON events (at);
