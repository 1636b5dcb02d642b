-- Live-schema drift: installed extensions, wherever they live (an extension added to the
-- database matters whichever schema it went to). plpgsql comes with every database.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        x.extname AS name,
        x.extversion AS version,
        n.nspname AS schema
    FROM pg_catalog.pg_extension AS x
    JOIN pg_catalog.pg_namespace AS n ON n.oid = x.extnamespace
    WHERE x.extname <> 'plpgsql'
) AS r
