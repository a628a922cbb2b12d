-- casework's write model. Households come from the replica (alfi.intake.events).
CREATE TABLE interviews (
    interview_id         uuid PRIMARY KEY,
    household_id         uuid NOT NULL REFERENCES households (household_id),
    worker_id            text NOT NULL,
    held_on              date NOT NULL,
    mode                 text NOT NULL,
    topics               text[] NOT NULL,
    duration_minutes     int NOT NULL,
    cancelled_on         date,
    cancellation_reason  text,
    request_hash         text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE workshops (
    workshop_id   uuid PRIMARY KEY,
    residence     text NOT NULL,
    territory     text NOT NULL,
    theme         text NOT NULL,
    held_on       date NOT NULL,
    participants  int NOT NULL,
    request_hash  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rehousings (
    rehousing_id   uuid PRIMARY KEY,
    household_id   uuid NOT NULL UNIQUE REFERENCES households (household_id),
    landlord       text NOT NULL,
    confirmed_on   date NOT NULL,
    youth          boolean NOT NULL,
    dalo_priority  boolean NOT NULL,
    request_hash   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
