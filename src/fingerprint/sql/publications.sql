SELECT p.pubname::text AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'owner', pg_catalog.pg_get_userbyid(p.pubowner)::text,
         'all_tables', p.puballtables,
         'insert', p.pubinsert, 'update', p.pubupdate, 'delete', p.pubdelete, 'truncate', p.pubtruncate,
         'via_partition_root', {via_root},
         'tables', (SELECT pg_catalog.array_agg(t.v ORDER BY t.v COLLATE pg_catalog."C") FROM (
                      SELECT n.nspname || '.' || c.relname || {columns} || {filter} AS v
                        FROM pg_catalog.pg_publication_rel r
                        JOIN pg_catalog.pg_class c ON c.oid = r.prrelid
                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       WHERE r.prpubid = p.oid) t),
         'schemas', {schemas},
         'comment', pg_catalog.obj_description(p.oid, 'pg_publication')
       )) AS props
  FROM pg_catalog.pg_publication p
