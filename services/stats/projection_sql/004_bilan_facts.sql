-- The facts of the published bilan beyond DESIGN.md's figures (README "stats: the bilan"):
-- an interview's mode, topics and duration, a situation's severity, reasons and outcome,
-- an accompaniment's closure outcome. All personal (sealed on the bus, read with the
-- household's key; NULL when read after it was deleted, which keeps what is stored).
-- In tables of their own rather than new columns, so that the all_* views and anon_*
-- twins of 002_erasure.sql keep their shape in every generation, old or new.
CREATE TABLE interview_details (
    interview_id      uuid PRIMARY KEY,
    household_id      uuid,
    mode              text,
    topics            text,   -- the topics' slugs, sorted, comma-separated
    duration_minutes  int
);
CREATE TABLE situation_details (
    situation_id  uuid PRIMARY KEY,
    household_id  uuid,
    severity      text,
    reasons       text,        -- the reasons' slugs, sorted, comma-separated
    outcome       text         -- set by the resolution
);
CREATE TABLE closures (
    household_id  uuid PRIMARY KEY,
    outcome       text
);
CREATE TABLE IF NOT EXISTS stats.anon_interview_details (LIKE interview_details INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_situation_details (LIKE situation_details INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_closures (LIKE closures INCLUDING ALL);
CREATE VIEW all_interview_details AS
    SELECT * FROM interview_details UNION ALL SELECT * FROM stats.anon_interview_details;
CREATE VIEW all_situation_details AS
    SELECT * FROM situation_details UNION ALL SELECT * FROM stats.anon_situation_details;
CREATE VIEW all_closures AS SELECT * FROM closures UNION ALL SELECT * FROM stats.anon_closures;
