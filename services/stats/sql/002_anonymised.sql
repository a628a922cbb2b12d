-- What is left of erased households, for the figures: their rows as the projections
-- held them when the erasure was applied, under new random ids that appear nowhere
-- else (not on the bus, not in any generation), so nothing links them to the household
-- any more. Kept outside the generations: a rebuild cannot recompute them (the
-- household's key is gone) and reads them from here. See README "Privacy".
CREATE TABLE anonymised_households (
    household_id   uuid PRIMARY KEY,          -- the erased id: ids only, never facts
    anonymised_at  timestamptz NOT NULL DEFAULT now()
);
-- The anon_* tables themselves are made like the generation's tables (projection_sql/
-- 002_erasure.sql), so both sides of the reports' all_* views keep one shape.
