SELECT n.nspname || '.' || c.relname || '.' || r.rulename AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_ruledef(r.oid),
         'enabled', CASE r.ev_enabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
         'comment', pg_catalog.obj_description(r.oid, 'pg_rewrite')
       )) AS props
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
