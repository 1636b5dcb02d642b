-- Live-schema drift: views and materialized views of the managed schemas, with the definition
-- as PostgreSQL stores it (parsed and printed again, so the author's spacing never shows).
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS name,
        c.relkind::text AS relkind,
        pg_catalog.pg_get_viewdef(c.oid) AS definition,
        coalesce(c.reloptions, ARRAY[]::text[]) AS options,
        pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
        pg_catalog.pg_get_userbyid(c.relowner) AS owner,
        {grants} AS grants
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner)) AS acl, c.relowner AS owner
    ) AS acl_of
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND c.relkind IN ('v', 'm')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype = 'e'
      )
) AS r
