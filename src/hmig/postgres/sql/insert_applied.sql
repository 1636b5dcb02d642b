-- run_on = NOW(), the transaction's start, exactly as node-pg-migrate writes it.
INSERT INTO {schema}.{table} (name, run_on) VALUES (%(name)s, NOW()) RETURNING id
