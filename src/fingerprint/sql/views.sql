SELECT n.nspname || '.' || c.relname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS x(a)),
         'definition_sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                                pg_catalog.pg_get_viewdef(c.oid, true), 'UTF8')), 'hex'),
         'options', (SELECT pg_catalog.array_agg(o ORDER BY o COLLATE pg_catalog."C")
                       FROM pg_catalog.unnest(c.reloptions) AS o),
         'populated', CASE WHEN c.relkind = 'm' THEN c.relispopulated END,
         'comment', pg_catalog.obj_description(c.oid, 'pg_class')
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = '{relkind}'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
