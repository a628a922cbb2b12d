-- The households a service needs, replicated from alfi.intake.events (casework, veille).
-- Never read from intake's tables: services learn from events only.
CREATE TABLE households (
    household_id   uuid PRIMARY KEY,
    enrolled_on    date NOT NULL,
    closed_on      date,
    youth          boolean NOT NULL,
    dalo_priority  boolean NOT NULL,
    erased_on      date
);
