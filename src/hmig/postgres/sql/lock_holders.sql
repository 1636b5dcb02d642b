-- Sessions holding locks on the given relations (all relations of this database when none are
-- given), oldest transaction first: who made a migration's lock_timeout fire.
SELECT a.pid, a.application_name, a.usename, a.state, a.xact_start, a.query_start,
       string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ') AS locks
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_catalog.pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND (cardinality(%(relations)s::text[]) = 0
       OR l.relation IN (SELECT pg_catalog.to_regclass(r) FROM unnest(%(relations)s::text[]) r))
GROUP BY a.pid, a.application_name, a.usename, a.state, a.xact_start, a.query_start
ORDER BY a.xact_start NULLS LAST
LIMIT 5
