-- Erasure keeps a household's public facts (programme, territory, dates) and clears the
-- rest: its personal attributes and the hash of the enrolment request, which would let
-- a guessed replay confirm erased values.
ALTER TABLE households ALTER COLUMN youth DROP NOT NULL;
ALTER TABLE households ALTER COLUMN dalo_priority DROP NOT NULL;
ALTER TABLE households ALTER COLUMN request_hash DROP NOT NULL;
