SELECT n.nspname || '.' || ic.relname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'table', n.nspname || '.' || c.relname,
         'definition', pg_catalog.pg_get_indexdef(ic.oid),
         'clustered', NULLIF(i.indisclustered, false),
         'replica_identity', NULLIF(i.indisreplident, false),
         'comment', pg_catalog.obj_description(ic.oid, 'pg_class')
       )) AS props
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm')
   AND (i.indisvalid OR ic.relkind = 'I') AND i.indislive
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
