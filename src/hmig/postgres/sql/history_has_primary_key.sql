-- Tables created by node-pg-migrate v2/v3 have no primary key; later versions add one.
SELECT EXISTS (
  SELECT 1 FROM information_schema.table_constraints
  WHERE table_schema = %(schema)s AND table_name = %(table)s AND constraint_type = 'PRIMARY KEY'
)
