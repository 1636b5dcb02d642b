-- `hmig baseline`: the row node-pg-migrate's --fake would write.
INSERT INTO {schema}.{table} (name, run_on) VALUES (%(name)s, NOW())
