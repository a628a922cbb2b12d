-- One generation of stats' projections: facts per entity, merged idempotently from
-- events in any order (an interview may arrive before its household's enrolment), and
-- (with the platform's consumer_positions table, applied first by generations.py). Report figures are computed from these by
-- services/stats/reports.py. Only pseudonymous ids and closed vocabularies are kept.
CREATE TABLE households (
    household_id        uuid PRIMARY KEY,
    programme           text,
    territory           text,
    enrolled_on         date,
    youth               boolean,
    dalo_priority       boolean,
    referent_worker_id  text,
    referent_since      date,
    referent_at         timestamptz,
    closed_on           date,
    erased_on           date
);
CREATE TABLE interviews (
    interview_id  uuid PRIMARY KEY,
    household_id  uuid,
    worker_id     text,
    held_on       date,
    cancelled     boolean NOT NULL DEFAULT false
);
CREATE INDEX interviews_held_on ON interviews (held_on);
CREATE TABLE workshops (
    workshop_id   uuid PRIMARY KEY,
    residence     text NOT NULL,
    territory     text NOT NULL,
    theme         text NOT NULL,
    held_on       date NOT NULL,
    participants  int NOT NULL
);
CREATE TABLE rehousings (
    rehousing_id   uuid PRIMARY KEY,
    household_id   uuid NOT NULL,
    landlord       text NOT NULL,
    confirmed_on   date NOT NULL,
    youth          boolean NOT NULL,
    dalo_priority  boolean NOT NULL
);
CREATE TABLE situations (
    situation_id  uuid PRIMARY KEY,
    household_id  uuid,
    escalated_on  date,
    resolved_on   date
);
CREATE TABLE meetings (
    meeting_id  uuid PRIMARY KEY,
    held_on     date NOT NULL,
    territory   text NOT NULL
);
CREATE TABLE reviews (
    meeting_id    uuid NOT NULL,
    situation_id  uuid NOT NULL,
    decision      text NOT NULL,
    PRIMARY KEY (meeting_id, situation_id)
);
-- Projection freshness: the newest event time applied per topic.
CREATE TABLE freshness (
    topic            text PRIMARY KEY,
    last_event_time  timestamptz NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT now()
);
