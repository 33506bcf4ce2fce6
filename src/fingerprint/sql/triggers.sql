SELECT n.nspname || '.' || c.relname || '.' || t.tgname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_triggerdef(t.oid),
         'enabled', CASE t.tgenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
         'comment', pg_catalog.obj_description(t.oid, 'pg_trigger')
       )) AS props
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
