-- veille's write model. Households come from the replica (alfi.intake.events).
CREATE TABLE situations (
    situation_id    uuid PRIMARY KEY,
    household_id    uuid NOT NULL REFERENCES households (household_id),
    escalated_on    date NOT NULL,
    severity        text NOT NULL,
    reasons         text[] NOT NULL,
    resolved_on     date,
    outcome         text,
    request_hash    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE meetings (
    meeting_id    uuid PRIMARY KEY,
    held_on       date NOT NULL,
    territory     text NOT NULL,
    request_hash  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE reviews (
    meeting_id    uuid NOT NULL REFERENCES meetings (meeting_id),
    situation_id  uuid NOT NULL REFERENCES situations (situation_id),
    decision      text NOT NULL,
    PRIMARY KEY (meeting_id, situation_id)
);
