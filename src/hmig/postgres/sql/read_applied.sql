-- node-pg-migrate's order of record (src/runner.ts): run_on, then id.
SELECT id, name, run_on FROM {schema}.{table} ORDER BY run_on, id
