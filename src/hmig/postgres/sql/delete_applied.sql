-- node-pg-migrate's down deletes by name; a legacy `NAME.up` row and a row under a name
-- recorded in `migrations.renamed` are the same migration (the caller lists them all).
DELETE FROM {schema}.{table} WHERE name = ANY(%(names)s::text[])
