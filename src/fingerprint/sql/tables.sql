SELECT n.nspname || '.' || c.relname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'kind', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' ELSE 'foreign table' END,
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'row_level_security', c.relrowsecurity,
         'force_row_level_security', c.relforcerowsecurity,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS x(a)),
         'comment', pg_catalog.obj_description(c.oid, 'pg_class'),
         'persistence', CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 'u' THEN 'unlogged' ELSE 'temporary' END,
         'partition_of', (SELECT pn.nspname || '.' || pc.relname
                            FROM pg_catalog.pg_inherits i
                            JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
                            JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
                           WHERE i.inhrelid = c.oid AND c.relispartition),
         'partition_bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
         'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
         'inherits', (SELECT pg_catalog.array_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno)
                        FROM pg_catalog.pg_inherits i
                        JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
                        JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
                       WHERE i.inhrelid = c.oid AND NOT c.relispartition),
         'access_method', (SELECT am.amname::text FROM pg_catalog.pg_am am
                            WHERE am.oid = c.relam AND am.amname <> 'heap'),
         'options', (SELECT pg_catalog.array_agg(o ORDER BY o COLLATE pg_catalog."C")
                       FROM pg_catalog.unnest(c.reloptions) AS o),
         'replica_identity', CASE c.relreplident WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
                               WHEN 'i' THEN 'index' END
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f')
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
