SELECT n.nspname || '.' || c.relname AS key, n.nspname::text, c.relname::text,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'type', pg_catalog.format_type(s.seqtypid, NULL),
         'start', s.seqstart,
         'increment', s.seqincrement,
         'min', s.seqmin,
         'max', s.seqmax,
         'cache', s.seqcache,
         'cycle', s.seqcycle,
         'owned_by', (SELECT dn.nspname || '.' || dc.relname || '.' || da.attname
                        FROM pg_catalog.pg_depend d
                        JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid
                        JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
                        JOIN pg_catalog.pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
                         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                         AND d.deptype IN ('a', 'i') LIMIT 1),
         'identity', NULLIF(EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                       AND d.objid = c.oid AND d.deptype = 'i'), false),
         'persistence', CASE c.relpersistence WHEN 'u' THEN 'unlogged' END,
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('s', c.relowner))) AS x(a)),
         'comment', pg_catalog.obj_description(c.oid, 'pg_class')
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relkind = 'S'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
