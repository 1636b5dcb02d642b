-- Live-schema drift: functions and procedures of the managed schemas (not aggregates), with
-- their signature, attributes and body. `prosrc` is the body as written; a SQL-standard body
-- (BEGIN ATOMIC, RETURN; PostgreSQL 14+) is stored parsed, so `prosrc` is empty and the body
-- comes from pg_get_functiondef.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        p.proname AS name,
        pg_catalog.pg_get_function_identity_arguments(p.oid) AS identity_arguments,
        p.prokind::text AS prokind,
        l.lanname AS language,
        pg_catalog.pg_get_function_arguments(p.oid) AS arguments,
        pg_catalog.pg_get_function_result(p.oid) AS result,
        p.provolatile::text AS volatility,
        p.proisstrict AS strict,
        p.prosecdef AS security_definer,
        p.proleakproof AS leakproof,
        p.proparallel::text AS parallel,
        p.procost::float8 AS cost,
        p.prorows::float8 AS rows,
        coalesce(p.proconfig, ARRAY[]::text[]) AS config,
        p.prosrc AS source,
        CASE WHEN l.lanname = 'sql' AND p.prosrc = '' THEN pg_catalog.pg_get_functiondef(p.oid) END
            AS sql_body,
        pg_catalog.obj_description(p.oid, 'pg_proc') AS comment,
        pg_catalog.pg_get_userbyid(p.proowner) AS owner,
        {grants} AS grants
    FROM pg_catalog.pg_proc AS p
    JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
    CROSS JOIN LATERAL (
        SELECT coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner)) AS acl, p.proowner AS owner
    ) AS acl_of
    JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND p.prokind IN ('f', 'p', 'w')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
            AND e.objid = p.oid AND e.deptype = 'e'
      )
) AS r
