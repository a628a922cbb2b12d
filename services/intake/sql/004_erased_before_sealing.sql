-- Households erased before erasure cleared every personal attribute (and before the
-- request hash was cleared): cleared now, as an erasure does today.
UPDATE households SET referent_worker_id = NULL, youth = NULL, dalo_priority = NULL, adults = NULL,
    children = NULL, closure_outcome = NULL, request_hash = NULL
WHERE erased_on IS NOT NULL;
