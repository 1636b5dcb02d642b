-- An index left INVALID by a failed CREATE INDEX CONCURRENTLY (PostgreSQL docs, CREATE INDEX).
SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_index i
  WHERE i.indexrelid = pg_catalog.to_regclass(%(name)s) AND NOT i.indisvalid
)
