SELECT 'current'::text AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'owner', pg_catalog.pg_get_userbyid(d.datdba)::text,
         'encoding', pg_catalog.pg_encoding_to_char(d.encoding)::text,
         'collate', d.datcollate::text,
         'ctype', d.datctype::text,
         'locale_provider', {provider},
         'locale', {icu_locale},
         'icu_rules', {icu_rules},
         'connection_limit', NULLIF(d.datconnlimit, -1),
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) AS x(a)),
         'comment', pg_catalog.shobj_description(d.oid, 'pg_database'),
         'settings', (SELECT pg_catalog.jsonb_object_agg(pg_catalog.split_part(s, '=', 1),
                                                         pg_catalog.substr(s, pg_catalog.strpos(s, '=') + 1))
                        FROM pg_catalog.pg_db_role_setting rs, pg_catalog.unnest(rs.setconfig) AS s
                       WHERE rs.setdatabase = d.oid AND rs.setrole = 0),
         'role_settings', (SELECT pg_catalog.jsonb_object_agg(q.role, q.settings) FROM (
                             SELECT pg_catalog.pg_get_userbyid(rs.setrole)::text AS role,
                                    (SELECT pg_catalog.jsonb_object_agg(pg_catalog.split_part(s, '=', 1),
                                                                        pg_catalog.substr(s, pg_catalog.strpos(s, '=') + 1))
                                       FROM pg_catalog.unnest(rs.setconfig) AS s) AS settings
                               FROM pg_catalog.pg_db_role_setting rs
                              WHERE rs.setdatabase = d.oid AND rs.setrole <> 0) q)
       )) AS props
  FROM pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
