SELECT pg_catalog.pg_get_userbyid(m.roleid)::text || ' → ' || pg_catalog.pg_get_userbyid(m.member)::text AS key,
       pg_catalog.jsonb_build_object('admin_option', pg_catalog.bool_or(m.admin_option){extra}) AS props
  FROM pg_catalog.pg_auth_members m
 WHERE pg_catalog.pg_get_userbyid(m.member)::text !~ '^pg_'
 GROUP BY m.roleid, m.member
