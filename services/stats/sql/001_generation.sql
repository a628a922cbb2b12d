-- stats' base schema: which generation of the projections the API reads and the
-- projector feeds. A rebuild fills a new generation schema (stats_g<N>) from offset 0
-- and switches this pointer in one transaction when it has caught up.
CREATE TABLE generation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    current     int NOT NULL,
    switched_at timestamptz NOT NULL DEFAULT now()
);
