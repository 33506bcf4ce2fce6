SELECT t.evtname::text AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'event', t.evtevent::text,
         'function', pn.nspname || '.' || p.proname,
         'tags', (SELECT pg_catalog.array_agg(g ORDER BY g COLLATE pg_catalog."C")
                    FROM pg_catalog.unnest(t.evttags) AS g),
         'enabled', CASE t.evtenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
         'owner', pg_catalog.pg_get_userbyid(t.evtowner)::text,
         'comment', pg_catalog.obj_description(t.oid, 'pg_event_trigger')
       )) AS props
  FROM pg_catalog.pg_event_trigger t
  JOIN pg_catalog.pg_proc p ON p.oid = t.evtfoid
  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
                      AND e.objid = t.oid AND e.deptype = 'e')
