-- Erased households in this generation (ids, and the erasure event's time). Once the
-- erasure's grace period is over, the live generation's rows of the household are
-- copied to the base schema's anon_* tables under new ids and deleted (and so are any
-- that arrive later, in every generation); the reports read both through the all_* views.
CREATE TABLE erasures (
    household_id  uuid PRIMARY KEY,
    erased_at     timestamptz NOT NULL
);
CREATE TABLE erased_situations (
    situation_id  uuid PRIMARY KEY
);
ALTER TABLE rehousings ALTER COLUMN landlord DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN youth DROP NOT NULL;
ALTER TABLE rehousings ALTER COLUMN dalo_priority DROP NOT NULL;
-- What is left of erased households (see stats/sql/002_anonymised.sql) lives in the base
-- schema, in tables of the same shape as these, made by the first generation; a later
-- migration that changes a projected table must change its anon_ twin the same way.
CREATE TABLE IF NOT EXISTS stats.anon_households (LIKE households INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_interviews (LIKE interviews INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_rehousings (LIKE rehousings INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_situations (LIKE situations INCLUDING ALL);
-- A review keeps no meeting id (the meeting's event lists its situations in clear: the id
-- would lead back to the household), only what the figures need of the meeting.
CREATE TABLE IF NOT EXISTS stats.anon_reviews (
    situation_id  uuid NOT NULL,
    decision      text NOT NULL,
    held_on       date NOT NULL
);
CREATE VIEW all_households AS SELECT * FROM households UNION ALL SELECT * FROM stats.anon_households;
CREATE VIEW all_interviews AS SELECT * FROM interviews UNION ALL SELECT * FROM stats.anon_interviews;
CREATE VIEW all_rehousings AS SELECT * FROM rehousings UNION ALL SELECT * FROM stats.anon_rehousings;
CREATE VIEW all_situations AS SELECT * FROM situations UNION ALL SELECT * FROM stats.anon_situations;
CREATE VIEW all_reviews AS
    SELECT r.situation_id, r.decision, m.held_on FROM reviews r JOIN meetings m USING (meeting_id)
    UNION ALL SELECT situation_id, decision, held_on FROM stats.anon_reviews;
