-- Live-schema drift: user triggers of the managed schemas' tables and views. Internal ones
-- (foreign keys') are part of their constraint; a partition's clone of its parent's trigger
-- (tgparentid, PostgreSQL 13+) is read on the parent.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS table_name,
        c.relkind::text AS table_kind,
        t.tgname AS name,
        pg_catalog.pg_get_triggerdef(t.oid) AS definition,
        t.tgenabled::text AS enabled,
        pg_catalog.obj_description(t.oid, 'pg_trigger') AS comment
    FROM pg_catalog.pg_trigger AS t
    JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND NOT t.tgisinternal
      AND t.tgparentid = 0
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype = 'e'
      )
) AS r
