SELECT n.nspname || '.' || c.relname || '.' || k.conname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'type', CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                   WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion'
                   WHEN 't' THEN 'trigger' WHEN 'n' THEN 'not null' ELSE k.contype::text END,
         'definition', pg_catalog.pg_get_constraintdef(k.oid),
         'comment', pg_catalog.obj_description(k.oid, 'pg_constraint')
       )) AS props
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
