-- Least privilege: a token may be bound to territories (empty: every territory) and to
-- one worker id (a field tool records interviews only under it). Tokens are listed and
-- revoked by a short id, the first hex digits of token_hash (not a secret: the hash of a
-- 256-bit random token tells nothing of it).
ALTER TABLE tokens
    ADD COLUMN territories  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN worker_id    text;
CREATE INDEX tokens_label ON tokens (label);
