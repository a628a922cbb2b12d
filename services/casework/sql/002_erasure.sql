-- Erasure clears the personal facts casework holds about a household (the columns of
-- the events' personal fields, and the request hashes that would confirm a guess) and
-- keeps the public ones (ids, dates).
ALTER TABLE interviews ALTER COLUMN worker_id DROP NOT NULL;
ALTER TABLE interviews ALTER COLUMN mode DROP NOT NULL;
ALTER TABLE interviews ALTER COLUMN topics DROP NOT NULL;
ALTER TABLE interviews ALTER COLUMN duration_minutes DROP NOT NULL;
ALTER TABLE interviews ALTER COLUMN request_hash DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN landlord DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN youth DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN dalo_priority DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN request_hash DROP NOT NULL;
