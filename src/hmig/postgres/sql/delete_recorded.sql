DELETE FROM {schema}.hmig_history WHERE name IN (%(name)s::text, %(name)s::text || '.up')
