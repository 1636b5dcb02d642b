DELETE FROM {schema}.hmig_history WHERE name = ANY(%(names)s::text[])
