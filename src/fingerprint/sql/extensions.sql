SELECT x.extname::text AS key,
       pg_catalog.jsonb_build_object('version', x.extversion, 'schema', n.nspname::text) AS props
  FROM pg_catalog.pg_extension x
  JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
