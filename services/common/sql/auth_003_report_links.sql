-- Links to the printable bilan for a browser (stats: POST /v1/reports/links): a random
-- secret, stored here only as its SHA-256, valid for one year's pages until it expires
-- and only while the token that minted it is valid (revoking the token ends its links).
CREATE TABLE report_links (
    link_hash   bytea PRIMARY KEY,
    token_hash  bytea NOT NULL REFERENCES tokens (token_hash) ON DELETE CASCADE,
    year        int NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX report_links_expiry ON report_links (expires_at);
