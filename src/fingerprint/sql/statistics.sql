SELECT n.nspname || '.' || s.stxname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_statisticsobjdef(s.oid),
         'owner', pg_catalog.pg_get_userbyid(s.stxowner)::text,
         'comment', pg_catalog.obj_description(s.oid, 'pg_statistic_ext')
       )) AS props
  FROM pg_catalog.pg_statistic_ext s
  JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass
                      AND e.objid = s.oid AND e.deptype = 'e')
