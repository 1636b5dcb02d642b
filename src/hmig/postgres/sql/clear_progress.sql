DELETE FROM {schema}.hmig_progress WHERE name = %(name)s
