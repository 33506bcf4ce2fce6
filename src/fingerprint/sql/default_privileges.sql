SELECT pg_catalog.pg_get_userbyid(a.defaclrole)::text || ' on '
       || CASE a.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
            WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE a.defaclobjtype::text END
       || COALESCE(' in schema ' || n.nspname, '') AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(a.defaclacl) AS x(a)))) AS props
  FROM pg_catalog.pg_default_acl a
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = a.defaclnamespace
