SELECT name, statement_index, statement_checksum, state, error
FROM {schema}.hmig_progress ORDER BY name, statement_index
