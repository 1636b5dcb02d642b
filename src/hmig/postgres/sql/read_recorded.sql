SELECT name, checksum, adopted, applied_by, hmig_version FROM {schema}.hmig_history
