-- A schema drift check passed: the live schema is what these migrations' files build, so the
-- checksums hmig took when it adopted their rows are verified.
UPDATE {schema}.hmig_history
SET adopted = false
WHERE adopted AND name = ANY(%(names)s::text[])
RETURNING name, checksum
