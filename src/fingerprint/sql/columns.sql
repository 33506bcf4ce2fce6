SELECT n.nspname || '.' || c.relname || '.' || a.attname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'position', pg_catalog.row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
         'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
         'not_null', a.attnotnull,
         'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
         'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
         'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
         'collation', (SELECT cn.nspname || '.' || co.collname
                         FROM pg_catalog.pg_collation co
                         JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                        WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation),
         'storage', CASE WHEN a.attstorage <> t.typstorage THEN
                      CASE a.attstorage WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external'
                        WHEN 'm' THEN 'main' WHEN 'x' THEN 'extended' END END,
         'statistics', NULLIF(a.attstattarget, -1),
         'options', (SELECT pg_catalog.array_agg(o ORDER BY o COLLATE pg_catalog."C")
                       FROM pg_catalog.unnest(a.attoptions) AS o),
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(a.attacl) AS x(a)),
         'comment', pg_catalog.col_description(c.oid, a.attnum)
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
