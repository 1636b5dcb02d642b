-- Live-schema drift: primary key, unique, foreign key, check, exclusion and constraint
-- triggers' constraints of the managed schemas' tables. NOT NULL is a column property:
-- PostgreSQL 18 also records it here (contype 'n'), 15 does not, so it is left out. Constraints
-- a partition clones from its parent (conparentid) or only inherits are read on the parent.
-- One jsonb object per row: the adapter reads columns by name.
SELECT pg_catalog.to_jsonb(r) FROM (
    SELECT
        n.nspname AS schema,
        c.relname AS table_name,
        con.conname AS name,
        con.contype::text AS contype,
        pg_catalog.pg_get_constraintdef(con.oid) AS definition,
        pg_catalog.obj_description(con.oid, 'pg_constraint') AS comment
    FROM pg_catalog.pg_constraint AS con
    JOIN pg_catalog.pg_class AS c ON c.oid = con.conrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY (%(schemas)s::text[])
      AND con.contype IN ('p', 'u', 'f', 'c', 'x')
      AND con.conparentid = 0
      AND con.conislocal
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_depend AS e
          WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND e.objid = c.oid AND e.deptype = 'e'
      )
) AS r
