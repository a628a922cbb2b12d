-- intake's write model: the households it enrolled and the state of their accompaniment.
CREATE TABLE households (
    household_id        uuid PRIMARY KEY,
    programme           text NOT NULL,
    territory           text NOT NULL,
    referent_worker_id  text,
    enrolled_on         date NOT NULL,
    youth               boolean NOT NULL,
    dalo_priority       boolean NOT NULL,
    adults              int,
    children            int,
    closed_on           date,
    closure_outcome     text,
    erased_on           date,
    request_hash        text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_on IS NULL OR closed_on >= enrolled_on)
);
