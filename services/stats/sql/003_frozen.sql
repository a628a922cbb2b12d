-- Frozen bilans (services/stats/freeze.py): a closed year's figures as published, with
-- what they were computed from: the generation they were read in and, per topic and
-- partition, the next offset the projector had applied ({"alfi.intake.events": {"0": 412}}:
-- every event before it, none after), and the SHA-256 of the figures' canonical JSON.
-- Recomputing from offset 0 up to those offsets gives the same hash
-- (python -m services.stats.freeze verify <year>). Written once; the platform never updates
-- a frozen year.
CREATE TABLE frozen_years (
    year        int PRIMARY KEY CHECK (year BETWEEN 1900 AND 2100),
    generation  int NOT NULL,
    offsets     jsonb NOT NULL,
    figures     jsonb NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    frozen_at   timestamptz NOT NULL DEFAULT now(),
    frozen_by   text NOT NULL  -- the token's label (never the token), or cli:<user>
);
