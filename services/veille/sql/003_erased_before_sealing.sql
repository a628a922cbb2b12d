-- Households erased before veille cleared their personal facts: cleared now.
UPDATE situations SET severity = NULL, reasons = NULL, outcome = NULL, request_hash = NULL
WHERE household_id IN (SELECT household_id FROM households WHERE erased_on IS NOT NULL);
