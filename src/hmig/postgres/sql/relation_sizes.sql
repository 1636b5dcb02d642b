-- Sizes of the tables pending migrations lock, for lint (read-only). Names resolve through the
-- session's search_path with to_regclass, which returns NULL (and so no row) for a table that
-- does not exist yet, e.g. one an earlier pending migration creates. A partitioned table has
-- no storage of its own: its partitions, at every level, are listed under its name.
-- The name parts arrive already case-folded by PostgreSQL's parser (pglast): quote_ident keeps
-- them exactly as they are.
WITH RECURSIVE input AS (
    SELECT
        n.name,
        pg_catalog.to_regclass(
            CASE WHEN n.schema_name IS NULL THEN pg_catalog.quote_ident(n.relation_name)
            ELSE pg_catalog.quote_ident(n.schema_name) || '.'
                || pg_catalog.quote_ident(n.relation_name) END
        ) AS relid
    FROM ROWS FROM (
        pg_catalog.unnest(%(names)s::text[]),
        pg_catalog.unnest(%(schemas)s::text[]),
        pg_catalog.unnest(%(relations)s::text[])
    ) AS n (name, schema_name, relation_name)
), tree AS (
    SELECT i.name, i.relid FROM input AS i WHERE i.relid IS NOT NULL
    UNION ALL
    SELECT t.name, inh.inhrelid::pg_catalog.regclass
    FROM tree AS t
    JOIN pg_catalog.pg_class AS parent ON parent.oid = t.relid AND parent.relkind = 'p'
    JOIN pg_catalog.pg_inherits AS inh ON inh.inhparent = parent.oid
)
SELECT
    t.name,
    c.relkind::text,
    c.reltuples::float8,
    c.relpages::int8,
    pg_catalog.pg_relation_size(c.oid) AS heap_bytes,
    pg_catalog.pg_total_relation_size(c.oid) AS total_bytes,
    pg_catalog.current_setting('block_size')::int AS block_size,
    (
        -- The planner's width guess for a never-analysed table: fixed-size columns at their
        -- length, variable-size ones at 32 bytes (get_typavgwidth's default).
        SELECT coalesce(sum(CASE WHEN a.attlen > 0 THEN a.attlen ELSE 32 END), 0)::int8
        FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    ) AS row_width
FROM tree AS t
JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
