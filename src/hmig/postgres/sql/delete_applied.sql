-- node-pg-migrate's down deletes by name; a legacy `NAME.up` row is the same migration.
DELETE FROM {schema}.{table} WHERE name IN (%(name)s::text, %(name)s::text || '.up')
