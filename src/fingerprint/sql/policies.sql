SELECT n.nspname || '.' || c.relname || '.' || p.polname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'permissive', p.polpermissive,
         'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                      WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
         'roles', (SELECT pg_catalog.array_agg(r.name ORDER BY r.name COLLATE pg_catalog."C")
                     FROM (SELECT CASE WHEN o.oid = 0 THEN 'public'
                                       ELSE pg_catalog.pg_get_userbyid(o.oid)::text END AS name
                             FROM pg_catalog.unnest(p.polroles) AS o(oid)) r),
         'using', pg_catalog.pg_get_expr(p.polqual, p.polrelid),
         'with_check', pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid),
         'comment', pg_catalog.obj_description(p.oid, 'pg_policy')
       )) AS props
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
