-- The replica also knows a household's programme and territory (public facts: tokens
-- bound to territories are checked against them). Its personal facts (youth, DALO
-- priority) are cleared when the household is erased, and unknown when its key was
-- destroyed before its enrolment reached this replica.
ALTER TABLE households ADD COLUMN programme text;
ALTER TABLE households ADD COLUMN territory text;
ALTER TABLE households ALTER COLUMN youth DROP NOT NULL;
ALTER TABLE households ALTER COLUMN dalo_priority DROP NOT NULL;
