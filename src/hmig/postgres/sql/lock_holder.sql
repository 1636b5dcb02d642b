-- Who holds the migration lock? An int8 advisory key is stored as classid = high 32 bits,
-- objid = low 32 bits, objsubid = 1 (PostgreSQL docs, "pg_locks").
SELECT a.pid, a.application_name, a.usename, a.state, a.query_start, a.client_addr::text
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid AND l.objsubid = 1
LIMIT 1
