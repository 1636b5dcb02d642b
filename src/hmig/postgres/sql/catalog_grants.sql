ARRAY(
    SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                ELSE pg_catalog.pg_get_userbyid(g.grantee) END
        || ' ' || g.privilege_type
        || CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
    FROM pg_catalog.aclexplode(acl_of.acl) AS g
    WHERE g.grantee <> acl_of.owner
    ORDER BY 1
)
