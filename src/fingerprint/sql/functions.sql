SELECT n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'kind', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'w' THEN 'window function' ELSE 'function' END,
         'arguments', pg_catalog.pg_get_function_arguments(p.oid),
         'returns', pg_catalog.pg_get_function_result(p.oid),
         'language', l.lanname::text,
         'security_definer', p.prosecdef,
         'volatility', CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
         'strict', p.proisstrict,
         'leakproof', NULLIF(p.proleakproof, false),
         'parallel', CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END,
         'cost', p.procost,
         'rows', NULLIF(p.prorows, 0),
         'support', CASE WHEN p.prosupport <> 0 THEN p.prosupport::pg_catalog.regproc::text END,
         'config', (SELECT pg_catalog.jsonb_object_agg(pg_catalog.split_part(s, '=', 1),
                                                       pg_catalog.substr(s, pg_catalog.strpos(s, '=') + 1))
                      FROM pg_catalog.unnest(p.proconfig) AS s),
         'owner', pg_catalog.pg_get_userbyid(p.proowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS x(a)),
         'body_sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                          COALESCE({body}, '') || COALESCE(E'\n' || p.probin, ''), 'UTF8')), 'hex'),
         'comment', pg_catalog.obj_description(p.oid, 'pg_proc')
       )) AS props
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE p.prokind <> 'a'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
