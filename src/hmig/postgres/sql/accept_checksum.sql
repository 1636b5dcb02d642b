-- `hmig repair`: the file changed on purpose (or an adopted row is accepted as it is).
UPDATE {schema}.hmig_history
SET checksum = %(checksum)s, adopted = false, applied_by = %(applied_by)s,
    hmig_version = %(hmig_version)s, recorded_at = now()
WHERE name = %(name)s
