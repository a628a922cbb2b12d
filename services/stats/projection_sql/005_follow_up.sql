-- The follow-up of veille decisions (issue 14): the actions a meeting decided and what
-- became of them, and the re-reviews it scheduled. Only ids and dates: an action's kind,
-- owner and cancellation reason are personal and no figure needs them. Every column but
-- the key may be NULL: a completion or a cancellation may be applied before its decision.
CREATE TABLE actions (
    action_id     uuid PRIMARY KEY,
    household_id  uuid,
    situation_id  uuid,
    meeting_id    uuid,
    decided_on    date,
    due_on        date,
    completed_on  date,
    cancelled_on  date
);
CREATE TABLE re_reviews (
    situation_id  uuid NOT NULL,
    meeting_id    uuid NOT NULL,
    household_id  uuid,
    scheduled_on  date,
    review_on     date,
    PRIMARY KEY (situation_id, meeting_id)
);
-- The anonymous residue of erased households (002_erasure.sql), copied under new ids by
-- projector.ANONYMISE: an action keeps no meeting id (the meeting's event lists its
-- situations in clear, which would lead back to the household), a re-review a random one.
CREATE TABLE IF NOT EXISTS stats.anon_actions (LIKE actions INCLUDING ALL);
CREATE TABLE IF NOT EXISTS stats.anon_re_reviews (LIKE re_reviews INCLUDING ALL);
CREATE VIEW all_actions AS SELECT * FROM actions UNION ALL SELECT * FROM stats.anon_actions;
CREATE VIEW all_re_reviews AS SELECT * FROM re_reviews UNION ALL SELECT * FROM stats.anon_re_reviews;
