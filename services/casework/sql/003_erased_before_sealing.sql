-- Households erased before casework cleared their personal facts: cleared now.
UPDATE interviews SET worker_id = NULL, mode = NULL, topics = NULL, duration_minutes = NULL,
    cancellation_reason = NULL, request_hash = NULL
WHERE household_id IN (SELECT household_id FROM households WHERE erased_on IS NOT NULL);
UPDATE rehousings SET landlord = NULL, youth = NULL, dalo_priority = NULL, request_hash = NULL
WHERE household_id IN (SELECT household_id FROM households WHERE erased_on IS NOT NULL);
