-- Outbox rows the broker refuses for good (too large, invalid topic, corrupt record) are
-- set aside instead of blocking every row behind them: the relay stamps them refused,
-- with a closed kind and a detail naming the error class and the size (never the
-- payload), publishes a payload-free record on the topic's dead-letter topic, and goes
-- on. A row is pending while neither published nor refused. Putting a set-aside row back
-- (after raising the topic's max.message.bytes, say) is `UPDATE outbox SET refused_at =
-- NULL, refusal_kind = NULL, refusal_detail = NULL WHERE id = ...`.
ALTER TABLE outbox
    ADD COLUMN refused_at      timestamptz,
    ADD COLUMN refusal_kind    text,
    ADD COLUMN refusal_detail  text,
    ADD CONSTRAINT outbox_refusal_has_a_kind CHECK ((refused_at IS NULL) = (refusal_kind IS NULL)),
    ADD CONSTRAINT outbox_published_or_refused CHECK (published_at IS NULL OR refused_at IS NULL);

DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL AND refused_at IS NULL;
CREATE INDEX outbox_set_aside ON outbox (id) WHERE refused_at IS NOT NULL;
