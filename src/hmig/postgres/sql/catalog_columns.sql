-- Live-schema drift: columns of the managed schemas' tables. Columns a table only inherits
-- (a partition's, a child's) are its parent's; they are read there. A column's collation is
-- read only when it is not its type's default, so the servers' default collations never show.
-- Storage likewise only when it is not the type's. An identity column carries its sequence's
-- options; the sequence itself is not listed.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS table_name,
        a.attname AS name,
        pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
        CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
            AS default_value,
        a.attnotnull AS not_null,
        a.attidentity::text AS identity,
        a.attgenerated::text AS generated,
        CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
            AS generation,
        CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END AS storage,
        CASE WHEN a.attcollation <> t.typcollation THEN (
            SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
            FROM pg_catalog.pg_collation AS co
            JOIN pg_catalog.pg_namespace AS cn ON cn.oid = co.collnamespace
            WHERE co.oid = a.attcollation
        ) END AS collation,
        (
            SELECT ARRAY[
                s.seqstart::text, s.seqincrement::text, s.seqmin::text, s.seqmax::text,
                s.seqcache::text, s.seqcycle::text
            ]
            FROM pg_catalog.pg_depend AS dep
            JOIN pg_catalog.pg_sequence AS s ON s.seqrelid = dep.objid
            WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND dep.refobjid = c.oid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
        ) AS identity_options,
        pg_catalog.col_description(c.oid, a.attnum) AS comment,
        {grants} AS grants
    FROM pg_catalog.pg_attribute AS a
    JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT a.attacl AS acl, c.relowner AS owner
    ) AS acl_of
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND c.relkind IN ('r', 'p', 'f')
      AND a.attnum > 0
      AND NOT a.attisdropped
      AND a.attislocal
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype = 'e'
      )
) AS r
