-- Households erased before stats anonymised erased households: anonymised once the
-- grace period from now is over, like any erasure (an empty new generation: nothing).
INSERT INTO erasures (household_id, erased_at)
SELECT household_id, now() FROM households WHERE erased_on IS NOT NULL
ON CONFLICT (household_id) DO NOTHING;
