-- Live-schema drift: indexes of the managed schemas' tables and materialized views, with their
-- full definition and validity (an INVALID index is what a failed CREATE INDEX CONCURRENTLY
-- leaves). Indexes that implement a primary key, unique or exclusion constraint are read as
-- that constraint.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        t.relname AS table_name,
        t.relkind::text AS table_kind,
        i.relname AS name,
        pg_catalog.pg_get_indexdef(i.oid) AS definition,
        x.indisvalid AS valid,
        pg_catalog.obj_description(i.oid, 'pg_class') AS comment
    FROM pg_catalog.pg_index AS x
    JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_class AS t ON t.oid = x.indrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = i.relnamespace
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND t.relkind IN ('r', 'p', 'm')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_constraint AS con
          WHERE con.conindid = i.oid AND con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x')
      )
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = t.oid AND e.deptype = 'e'
      )
) AS r
