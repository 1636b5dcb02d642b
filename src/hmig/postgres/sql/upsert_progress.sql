INSERT INTO {schema}.hmig_progress (name, statement_index, statement_checksum, state, error)
VALUES (%(name)s, %(index)s, %(checksum)s, %(state)s, %(error)s)
ON CONFLICT (name, statement_index) DO UPDATE SET
  statement_checksum = EXCLUDED.statement_checksum, state = EXCLUDED.state,
  error = EXCLUDED.error, updated_at = clock_timestamp()
