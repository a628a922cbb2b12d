-- Households erased before the replica cleared their personal facts: cleared now.
UPDATE households SET youth = NULL, dalo_priority = NULL WHERE erased_on IS NOT NULL;
