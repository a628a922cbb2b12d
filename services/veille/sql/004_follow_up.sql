-- Follow-up (issue 14): the actions a meeting decides for the situations it reviews, and
-- the date from which it asks to review a situation again.
--
-- An action belongs to the meeting that decided it (the meeting's request hash covers
-- it: a replayed meeting finds its actions here, under the ids recorded the first time).
-- `position` is its index in its review's list, so a replay answers them in the order
-- sent. kind, owner_worker_id and cancel_reason are personal (the events seal them):
-- erasure clears them, and the request hashes of the meetings that decided them.
CREATE TABLE actions (
    action_id        uuid PRIMARY KEY,
    meeting_id       uuid NOT NULL REFERENCES meetings (meeting_id),
    situation_id     uuid NOT NULL REFERENCES situations (situation_id),
    household_id     uuid NOT NULL REFERENCES households (household_id),
    position         int NOT NULL,
    kind             text,
    owner_worker_id  text,
    decided_on       date NOT NULL,
    due_on           date NOT NULL CHECK (due_on >= decided_on),
    completed_on     date CHECK (completed_on >= decided_on),
    cancelled_on     date CHECK (cancelled_on >= decided_on),
    cancel_reason    text,
    CHECK (completed_on IS NULL OR cancelled_on IS NULL),
    UNIQUE (meeting_id, situation_id, position)
);
-- The agenda: a territory's open actions (households join on their id).
CREATE INDEX actions_open ON actions (household_id, due_on) WHERE completed_on IS NULL AND cancelled_on IS NULL;

-- A review may ask to see its situation again from a date (after the meeting's).
ALTER TABLE reviews ADD COLUMN re_review_on date;
CREATE INDEX reviews_situation ON reviews (situation_id);

-- A meeting's request hash covers its actions' kinds and owners since follow-up: cleared
-- when one of its households is erased, as situations' are.
ALTER TABLE meetings ALTER COLUMN request_hash DROP NOT NULL;
