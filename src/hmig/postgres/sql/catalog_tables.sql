-- Live-schema drift: tables (plain, partitioned, foreign) of the managed schemas, read from
-- pg_catalog. Extension members (pg_depend deptype 'e') belong to their extension. Owner and
-- grants are always read; the snapshot keeps them only behind the manifest's switch. Grants
-- expand a NULL acl to its default (acldefault) and leave out the owner's own entry, so a
-- never-granted table and one granted and revoked again read the same.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS name,
        c.relkind::text AS relkind,
        c.relpersistence::text AS persistence,
        c.relrowsecurity AS row_security,
        c.relforcerowsecurity AS force_row_security,
        CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key,
        (
            SELECT pn.nspname || '.' || pc.relname
            FROM pg_catalog.pg_inherits AS i
            JOIN pg_catalog.pg_class AS pc ON pc.oid = i.inhparent
            JOIN pg_catalog.pg_namespace AS pn ON pn.oid = pc.relnamespace
            WHERE i.inhrelid = c.oid AND c.relispartition
        ) AS partition_of,
        CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END
            AS partition_bound,
        ARRAY(
            SELECT pn.nspname || '.' || pc.relname
            FROM pg_catalog.pg_inherits AS i
            JOIN pg_catalog.pg_class AS pc ON pc.oid = i.inhparent
            JOIN pg_catalog.pg_namespace AS pn ON pn.oid = pc.relnamespace
            WHERE i.inhrelid = c.oid AND NOT c.relispartition
            ORDER BY i.inhseqno
        ) AS inherits,
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
      AND c.relkind IN ('r', 'p', 'f')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype = 'e'
      )
) AS r
