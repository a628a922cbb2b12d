-- Platform-wide API tokens (schema "auth"): only a SHA-256 of each token is stored.
CREATE TABLE tokens (
    token_hash  bytea PRIMARY KEY,
    scopes      text[] NOT NULL,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
