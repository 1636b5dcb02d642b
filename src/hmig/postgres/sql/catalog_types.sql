-- Live-schema drift: enum, domain, composite and range types of the managed schemas. Enum labels
-- come in their sort order; a domain's NOT NULL is typnotnull (PostgreSQL 17+ also records it
-- in pg_constraint, 15 does not, so contype 'n' is left out of its checks). Tables' row types and
-- array types are not types of their own here.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        t.typname AS name,
        t.typtype::text AS typtype,
        ARRAY(
            SELECT e.enumlabel::text FROM pg_catalog.pg_enum AS e
            WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder
        ) AS labels,
        CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END
            AS base_type,
        t.typnotnull AS not_null,
        pg_catalog.pg_get_expr(t.typdefaultbin, 0) AS default_value,
        CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation THEN (
            SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
            FROM pg_catalog.pg_collation AS co
            JOIN pg_catalog.pg_namespace AS cn ON cn.oid = co.collnamespace
            WHERE co.oid = t.typcollation
        ) END AS collation,
        ARRAY(
            SELECT con.conname || ' ' || pg_catalog.pg_get_constraintdef(con.oid)
            FROM pg_catalog.pg_constraint AS con
            WHERE con.contypid = t.oid AND con.contype = 'c'
            ORDER BY con.conname
        ) AS checks,
        ARRAY(
            SELECT pg_catalog.quote_ident(a.attname) || ' '
                || pg_catalog.format_type(a.atttypid, a.atttypmod)
            FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
        ) AS attributes,
        (
            SELECT pg_catalog.format_type(r.rngsubtype, NULL)
            FROM pg_catalog.pg_range AS r WHERE r.rngtypid = t.oid
        ) AS subtype,
        pg_catalog.obj_description(t.oid, 'pg_type') AS comment,
        pg_catalog.pg_get_userbyid(t.typowner) AS owner,
        {grants} AS grants
    FROM pg_catalog.pg_type AS t
    JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
    CROSS JOIN LATERAL (
        SELECT coalesce(t.typacl, pg_catalog.acldefault('T', t.typowner)) AS acl, t.typowner AS owner
    ) AS acl_of
    LEFT JOIN pg_catalog.pg_type AS bt ON bt.oid = t.typbasetype
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND (
          t.typtype IN ('e', 'd', 'r')
          OR (t.typtype = 'c' AND EXISTS (
              SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = t.typrelid AND c.relkind = 'c'
          ))
      )
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
            AND e.objid = t.oid AND e.deptype = 'e'
      )
) AS r
