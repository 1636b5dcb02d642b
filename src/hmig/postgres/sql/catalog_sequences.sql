-- Live-schema drift: sequences of the managed schemas, with their options and the column that
-- owns them (serial). Identity columns' sequences are read with their column.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS name,
        pg_catalog.format_type(s.seqtypid, NULL) AS type,
        s.seqstart::text AS start,
        s.seqincrement::text AS increment,
        s.seqmin::text AS minimum,
        s.seqmax::text AS maximum,
        s.seqcache::text AS cache,
        s.seqcycle AS cycle,
        (
            SELECT tn.nspname || '.' || tc.relname || '.' || a.attname
            FROM pg_catalog.pg_depend AS dep
            JOIN pg_catalog.pg_class AS tc ON tc.oid = dep.refobjid
            JOIN pg_catalog.pg_namespace AS tn ON tn.oid = tc.relnamespace
            JOIN pg_catalog.pg_attribute AS a
              ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
            WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND dep.objid = c.oid AND dep.deptype = 'a'
              AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        ) AS owned_by,
        pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
        pg_catalog.pg_get_userbyid(c.relowner) AS owner,
        {grants} AS grants
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT coalesce(c.relacl, pg_catalog.acldefault('s', c.relowner)) AS acl, c.relowner AS owner
    ) AS acl_of
    JOIN pg_catalog.pg_sequence AS s ON s.seqrelid = c.oid
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND c.relkind = 'S'
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype IN ('e', 'i')
      )
) AS r
