-- Live-schema drift: row level security policies on the managed schemas' tables; whether RLS
-- is enabled is a property of the table (catalog_tables.sql).
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS table_name,
        p.polname AS name,
        p.polcmd::text AS command,
        p.polpermissive AS permissive,
        ARRAY(
            SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r) END
            FROM pg_catalog.unnest(p.polroles) AS r
            ORDER BY 1
        ) AS roles,
        pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expression,
        pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expression,
        pg_catalog.obj_description(p.oid, 'pg_policy') AS comment
    FROM pg_catalog.pg_policy AS p
    JOIN pg_catalog.pg_class AS c ON c.oid = p.polrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY (%(schemas)s::text[])
) AS r
