-- Erasure clears the personal facts veille holds about a household's situations (the
-- columns of the events' personal fields, and the request hashes) and keeps the public
-- ones (ids, dates; a meeting's decisions are the team's, not the household's).
ALTER TABLE situations ALTER COLUMN severity DROP NOT NULL;
ALTER TABLE situations ALTER COLUMN reasons DROP NOT NULL;
ALTER TABLE situations ALTER COLUMN request_hash DROP NOT NULL;
