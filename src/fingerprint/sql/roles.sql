SELECT r.rolname::text AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'login', r.rolcanlogin, 'superuser', r.rolsuper, 'createdb', r.rolcreatedb,
         'createrole', r.rolcreaterole, 'inherit', r.rolinherit, 'replication', r.rolreplication,
         'bypassrls', r.rolbypassrls, 'connection_limit', r.rolconnlimit,
         'valid_until', r.rolvaliduntil::text,
         'config', (SELECT pg_catalog.jsonb_object_agg(pg_catalog.split_part(s, '=', 1),
                                                       pg_catalog.substr(s, pg_catalog.strpos(s, '=') + 1))
                      FROM pg_catalog.unnest(r.rolconfig) AS s)
       )) AS props
  FROM pg_catalog.pg_roles r
 WHERE r.rolname !~ '^pg_'
