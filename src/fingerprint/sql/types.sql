SELECT n.nspname || '.' || t.typname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'kind', CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'c' THEN 'composite'
                   WHEN 'r' THEN 'range' ELSE 'base' END,
         'labels', CASE WHEN t.typtype = 'e' THEN
                     (SELECT pg_catalog.array_agg(en.enumlabel::text ORDER BY en.enumsortorder)
                        FROM pg_catalog.pg_enum en WHERE en.enumtypid = t.oid) END,
         'base_type', CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
         'not_null', CASE WHEN t.typtype = 'd' THEN t.typnotnull END,
         'default', pg_catalog.pg_get_expr(t.typdefaultbin, 0),
         'collation', (SELECT cn.nspname || '.' || co.collname
                         FROM pg_catalog.pg_collation co
                         JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                         JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
                        WHERE t.typtype = 'd' AND co.oid = t.typcollation
                          AND t.typcollation <> bt.typcollation),
         'constraints', CASE WHEN t.typtype = 'd' THEN
                          (SELECT pg_catalog.jsonb_object_agg(k.conname, pg_catalog.pg_get_constraintdef(k.oid))
                             FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid) END,
         'attributes', CASE WHEN t.typtype = 'c' THEN
                         (SELECT pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) || ' '
                                   || pg_catalog.format_type(a.atttypid, a.atttypmod)
                                   || COALESCE((SELECT ' COLLATE ' || cn.nspname || '.' || co.collname
                                                  FROM pg_catalog.pg_collation co
                                                  JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                                                  JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                                                 WHERE co.oid = a.attcollation
                                                   AND a.attcollation <> at.typcollation), '')
                                   ORDER BY a.attnum)
                            FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END,
         'subtype', (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
                      WHERE r.rngtypid = t.oid),
         'owner', pg_catalog.pg_get_userbyid(t.typowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(t.typacl, pg_catalog.acldefault('T', t.typowner))) AS x(a)),
         'comment', pg_catalog.obj_description(t.oid, 'pg_type')
       )) AS props
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('e', 'd', 'r')
        OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class tc
                                         WHERE tc.oid = t.typrelid AND tc.relkind = 'c'))
        OR (t.typtype = 'b' AND t.typelem = 0 AND t.typcategory <> 'A'))
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                      AND e.objid = t.oid AND e.deptype = 'e')
