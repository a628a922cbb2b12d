-- The latest contact casework and veille reported per household (an interview held, a
-- rehousing confirmed, a situation escalated or resolved), kept from their events by
-- the contacts consumer (contacts.py); the retention clock (retention.py) counts from
-- the latest of this, the enrolment and the closure. No foreign key: an event is applied
-- whatever intake's own state.
CREATE TABLE contacts (
    household_id     uuid PRIMARY KEY,
    last_contact_on  date NOT NULL
);
