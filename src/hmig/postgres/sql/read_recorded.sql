SELECT name, checksum, adopted, applied_by, hmig_version, recorded_at FROM {schema}.hmig_history
