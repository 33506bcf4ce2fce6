//! The schema part of a fingerprint: catalog queries that describe every user object, run on
//! the source inside the backup's snapshot transaction and again on a restored scratch
//! database, and a diff that names each difference in words an operator understands.
//!
//! The result is sorted, readable JSON: section → object key → properties, e.g.
//!
//! ```text
//! "policies": { "public.profiles.profiles_select": { "command": "SELECT", "permissive": true,
//!               "roles": ["anon", "authenticated"], "using": "(NOT is_private)" } }
//! ```
//!
//! Rules the queries follow:
//! - User objects only: schemas `pg_*` (pg_catalog, pg_toast*, pg_temp*) and
//!   information_schema are skipped, and so is everything that belongs to an extension
//!   (`pg_depend.deptype = 'e'`): the extension's version stands for it.
//! - Deterministic: every array is sorted (text in the "C" collation), ACLs that are NULL are
//!   replaced by the built-in default they stand for (`acldefault`), so an explicit grant of the
//!   defaults and no grant at all compare equal, as pg_dump/pg_restore make them.
//! - Deparsed text (`pg_get_*def`, `format_type`, `pg_get_expr`) depends on session settings,
//!   so [`capture`] pins them for its own duration (search_path = pg_catalog, which makes every
//!   user name schema-qualified, DateStyle, TimeZone, ...) and puts the previous values back.
//! - Everything is turned into JSON by the server (`jsonb_build_object`), so no catalog type
//!   (aclitem, pg_node_tree, name[]) has to be decoded by the client; NULL properties are left
//!   out (`jsonb_strip_nulls`) to keep the JSON short.
//!
//! Works on PostgreSQL 12 and newer; the few catalog columns that appeared later
//! (publication row filters, ICU locale, membership options) are read only where they exist.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tokio_postgres::Client;

use crate::error::PgdrError;
use crate::sql::quote_ident;

/// Sorted, readable JSON: section → object key → properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub struct SchemaFingerprint {
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
}

impl SchemaFingerprint {
    /// Number of objects over all sections.
    pub fn object_count(&self) -> usize {
        self.sections.values().map(|s| s.len()).sum()
    }
}

/// What [`diff`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    /// Compare the database-level section (owner, comment, ACL, encoding, locale,
    /// `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE ... SET`). Off for restores
    /// into a database under another name that did not replay them (`pg_restore` without
    /// `--create`).
    pub database_properties: bool,
    /// Compare roles and memberships (cluster-wide). Off when the restore target is a cluster
    /// whose roles were not restored from the backup's globals.
    pub roles: bool,
    /// Compare object owners. Off for restores made with `--no-owner`.
    pub owners: bool,
    /// Compare privileges (ACLs, default privileges). Off for restores made with
    /// `--no-privileges` / `--no-acl`.
    pub privileges: bool,
    /// How sequence positions are compared.
    pub sequence_values: SequenceValues,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            database_properties: true,
            roles: true,
            owners: true,
            privileges: true,
            sequence_values: SequenceValues::Exact,
        }
    }
}

/// Sequences are not transactional: the value the fingerprint reads inside the snapshot is the
/// value at that moment, and pg_dump reads its own a little later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceValues {
    /// `last_value` and `is_called` must be identical (a quiet source, or a test).
    Exact,
    /// The restored sequence may be ahead of the fingerprint (in its increment's direction),
    /// never behind: a restored copy that would hand out already-used ids is still reported.
    NotBehind,
    /// Do not compare positions (definitions still are).
    Ignore,
}

// ---------------------------------------------------------------------------------------------
// Capture

/// Session settings that change deparsed text, pinned while capturing.
const PINNED: &[(&str, &str)] = &[
    ("search_path", "pg_catalog"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("quote_all_identifiers", "off"),
    ("standard_conforming_strings", "on"),
];

/// Run inside the caller's transaction (the backup's snapshot, or a restored scratch DB).
///
/// The settings in `PINNED` are set for the session while the queries run and restored
/// afterwards (inside a transaction, an abort undoes both anyway). The caller must not use
/// the same connection concurrently meanwhile.
///
/// Catalog caveat (as for pg_dump): the `pg_get_*def` functions read the current catalog, not
/// the snapshot, and sequence positions are read as of now, not as of the snapshot.
pub async fn capture(client: &Client) -> Result<SchemaFingerprint, PgdrError> {
    let names: Vec<&str> = PINNED.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = PINNED.iter().map(|(_, v)| *v).collect();
    let saved: Vec<String> = client
        .query(
            "SELECT pg_catalog.current_setting(s.n) FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS s(n, i) ORDER BY s.i",
            &[&names],
        )
        .await
        .map_err(|e| db_error("reading session settings", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    set_all(client, &names, &values)
        .await
        .map_err(|e| db_error("pinning session settings", &e))?;
    let result = capture_pinned(client).await;
    let saved_refs: Vec<&str> = saved.iter().map(String::as_str).collect();
    let restored = set_all(client, &names, &saved_refs).await;
    let fp = result?;
    restored.map_err(|e| db_error("restoring session settings", &e))?;
    Ok(fp)
}

async fn set_all(
    client: &Client,
    names: &[&str],
    values: &[&str],
) -> Result<(), tokio_postgres::Error> {
    client
        .query(
            "SELECT pg_catalog.set_config(s.n, s.v, false) FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS s(n, v)",
            &[&names, &values],
        )
        .await
        .map(|_| ())
}

fn db_error(doing: &str, e: &tokio_postgres::Error) -> PgdrError {
    let msg = match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => {
            let mut m = e.to_string();
            if let Some(s) = std::error::Error::source(e) {
                m = format!("{m}: {s}");
            }
            m
        }
    };
    PgdrError::database(format!("schema fingerprint: {doing}: {msg}"))
}

async fn capture_pinned(client: &Client) -> Result<SchemaFingerprint, PgdrError> {
    let version: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| db_error("reading the server version", &e))?
        .get(0);

    let queries: Vec<(&str, String)> = vec![
        ("schemas", SCHEMAS.to_string()),
        ("extensions", EXTENSIONS.to_string()),
        ("types", TYPES.to_string()),
        ("tables", TABLES.to_string()),
        ("columns", COLUMNS.to_string()),
        ("constraints", CONSTRAINTS.to_string()),
        ("indexes", INDEXES.to_string()),
        ("views", views_sql('v')),
        ("materialized_views", views_sql('m')),
        ("functions", functions_sql(version)),
        ("triggers", TRIGGERS.to_string()),
        ("rules", RULES.to_string()),
        ("policies", POLICIES.to_string()),
        ("publications", publications_sql(version)),
        ("event_triggers", EVENT_TRIGGERS.to_string()),
        ("statistics", STATISTICS.to_string()),
        ("default_privileges", DEFAULT_PRIVILEGES.to_string()),
        ("roles", ROLES.to_string()),
        ("memberships", memberships_sql(version)),
        ("database", database_sql(version)),
    ];
    let mut fp = SchemaFingerprint::default();
    for (section, sql) in &queries {
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .map_err(|e| db_error(&format!("reading {}", section.replace('_', " ")), &e))?;
        let map = fp.sections.entry(section.to_string()).or_default();
        for row in rows {
            map.insert(row.get::<_, String>(0), row.get::<_, Value>(1));
        }
    }
    let sequences = capture_sequences(client).await?;
    fp.sections.insert("sequences".into(), sequences);
    Ok(fp)
}

/// Sequence definitions from pg_sequence, positions from the sequence relations themselves
/// (`SELECT last_value, is_called FROM seq`, as pg_dump reads them), batched into UNION ALL
/// queries so a database with many sequences costs a few round trips.
async fn capture_sequences(client: &Client) -> Result<BTreeMap<String, Value>, PgdrError> {
    let rows = client
        .query(SEQUENCES, &[])
        .await
        .map_err(|e| db_error("reading sequences", &e))?;
    let mut seqs: Vec<(String, String, String, Value)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    for (chunk_no, chunk) in seqs.chunks_mut(200).enumerate() {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, nsp, rel, _))| {
                format!(
                    "SELECT {i}::int4, last_value::int8, is_called FROM {}.{}",
                    quote_ident(nsp),
                    quote_ident(rel)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = client.query(sql.as_str(), &[]).await.map_err(|e| {
            db_error(
                &format!("reading sequence positions (batch {})", chunk_no + 1),
                &e,
            )
        })?;
        for r in rows {
            let i: i32 = r.get(0);
            let last: i64 = r.get(1);
            let called: bool = r.get(2);
            if let Some((_, _, _, Value::Object(props))) = chunk.get_mut(i as usize) {
                props.insert("last_value".into(), last.into());
                props.insert("is_called".into(), called.into());
            }
        }
    }
    Ok(seqs.into_iter().map(|(k, _, _, v)| (k, v)).collect())
}

// The SQL. Fully qualified catalog names throughout; names are built as `schema.name`
// from the catalog (never `::regclass::text`, whose output depends on search_path).

const SCHEMAS: &str = r#"
SELECT n.nspname::text AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'owner', pg_catalog.pg_get_userbyid(n.nspowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) AS x(a)),
         'comment', pg_catalog.obj_description(n.oid, 'pg_namespace')
       )) AS props
  FROM pg_catalog.pg_namespace n
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                      AND e.objid = n.oid AND e.deptype = 'e')
"#;

const EXTENSIONS: &str = r#"
SELECT x.extname::text AS key,
       pg_catalog.jsonb_build_object('version', x.extversion, 'schema', n.nspname::text) AS props
  FROM pg_catalog.pg_extension x
  JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
"#;

const TYPES: &str = r#"
SELECT n.nspname || '.' || t.typname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'kind', CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'c' THEN 'composite'
                   WHEN 'r' THEN 'range' ELSE 'base' END,
         'labels', CASE WHEN t.typtype = 'e' THEN
                     (SELECT pg_catalog.array_agg(en.enumlabel::text ORDER BY en.enumsortorder)
                        FROM pg_catalog.pg_enum en WHERE en.enumtypid = t.oid) END,
         'base_type', CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
         'not_null', CASE WHEN t.typtype = 'd' THEN t.typnotnull END,
         'default', pg_catalog.pg_get_expr(t.typdefaultbin, 0),
         'collation', (SELECT cn.nspname || '.' || co.collname
                         FROM pg_catalog.pg_collation co
                         JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                         JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
                        WHERE t.typtype = 'd' AND co.oid = t.typcollation
                          AND t.typcollation <> bt.typcollation),
         'constraints', CASE WHEN t.typtype = 'd' THEN
                          (SELECT pg_catalog.jsonb_object_agg(k.conname, pg_catalog.pg_get_constraintdef(k.oid))
                             FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid) END,
         'attributes', CASE WHEN t.typtype = 'c' THEN
                         (SELECT pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) || ' '
                                   || pg_catalog.format_type(a.atttypid, a.atttypmod)
                                   || COALESCE((SELECT ' COLLATE ' || cn.nspname || '.' || co.collname
                                                  FROM pg_catalog.pg_collation co
                                                  JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                                                  JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                                                 WHERE co.oid = a.attcollation
                                                   AND a.attcollation <> at.typcollation), '')
                                   ORDER BY a.attnum)
                            FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END,
         'subtype', (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
                      WHERE r.rngtypid = t.oid),
         'owner', pg_catalog.pg_get_userbyid(t.typowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(t.typacl, pg_catalog.acldefault('T', t.typowner))) AS x(a)),
         'comment', pg_catalog.obj_description(t.oid, 'pg_type')
       )) AS props
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('e', 'd', 'r')
        OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class tc
                                         WHERE tc.oid = t.typrelid AND tc.relkind = 'c'))
        OR (t.typtype = 'b' AND t.typelem = 0 AND t.typcategory <> 'A'))
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                      AND e.objid = t.oid AND e.deptype = 'e')
"#;

const TABLES: &str = r#"
SELECT n.nspname || '.' || c.relname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'kind', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' ELSE 'foreign table' END,
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'row_level_security', c.relrowsecurity,
         'force_row_level_security', c.relforcerowsecurity,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS x(a)),
         'comment', pg_catalog.obj_description(c.oid, 'pg_class'),
         'persistence', CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 'u' THEN 'unlogged' ELSE 'temporary' END,
         'partition_of', (SELECT pn.nspname || '.' || pc.relname
                            FROM pg_catalog.pg_inherits i
                            JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
                            JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
                           WHERE i.inhrelid = c.oid AND c.relispartition),
         'partition_bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
         'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
         'inherits', (SELECT pg_catalog.array_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno)
                        FROM pg_catalog.pg_inherits i
                        JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
                        JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
                       WHERE i.inhrelid = c.oid AND NOT c.relispartition),
         'access_method', (SELECT am.amname::text FROM pg_catalog.pg_am am
                            WHERE am.oid = c.relam AND am.amname <> 'heap'),
         'options', (SELECT pg_catalog.array_agg(o ORDER BY o COLLATE pg_catalog."C")
                       FROM pg_catalog.unnest(c.reloptions) AS o),
         'replica_identity', CASE c.relreplident WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
                               WHEN 'i' THEN 'index' END
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f')
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

/// Columns of tables, views and materialized views (their comments, defaults and privileges
/// can be set too). `position` counts only live columns, so dropped columns in the source
/// do not show.
const COLUMNS: &str = r#"
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
"#;

const CONSTRAINTS: &str = r#"
SELECT n.nspname || '.' || c.relname || '.' || k.conname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'type', CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                   WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion'
                   WHEN 't' THEN 'trigger' WHEN 'n' THEN 'not null' ELSE k.contype::text END,
         'definition', pg_catalog.pg_get_constraintdef(k.oid),
         'comment', pg_catalog.obj_description(k.oid, 'pg_constraint')
       )) AS props
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

/// Indexes pg_dump would restore: valid and live ones (partitioned indexes are never valid
/// until all partitions have theirs, and pg_dump dumps them regardless).
const INDEXES: &str = r#"
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
"#;

/// Views (`v`) or materialized views (`m`).
fn views_sql(relkind: char) -> String {
    format!(
        r#"
SELECT n.nspname || '.' || c.relname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS x(a)),
         'definition_sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                                pg_catalog.pg_get_viewdef(c.oid, true), 'UTF8')), 'hex'),
         'options', (SELECT pg_catalog.array_agg(o ORDER BY o COLLATE pg_catalog."C")
                       FROM pg_catalog.unnest(c.reloptions) AS o),
         'populated', CASE WHEN c.relkind = 'm' THEN c.relispopulated END,
         'comment', pg_catalog.obj_description(c.oid, 'pg_class')
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = '{relkind}'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#
    )
}

/// Functions, procedures and window functions (aggregates are skipped). Every part of
/// `pg_get_functiondef` is a property of its own, the body (source text, or the parsed SQL
/// body of `BEGIN ATOMIC` functions from 14) as a hash, so one change is one diff line.
fn functions_sql(version: i32) -> String {
    let body = if version >= 140000 {
        "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) ELSE p.prosrc END"
    } else {
        "p.prosrc"
    };
    format!(
        r#"
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
"#
    )
}

const TRIGGERS: &str = r#"
SELECT n.nspname || '.' || c.relname || '.' || t.tgname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_triggerdef(t.oid),
         'enabled', CASE t.tgenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
         'comment', pg_catalog.obj_description(t.oid, 'pg_trigger')
       )) AS props
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

const RULES: &str = r#"
SELECT n.nspname || '.' || c.relname || '.' || r.rulename AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_ruledef(r.oid),
         'enabled', CASE r.ev_enabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
         'comment', pg_catalog.obj_description(r.oid, 'pg_rewrite')
       )) AS props
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

const POLICIES: &str = r#"
SELECT n.nspname || '.' || c.relname || '.' || p.polname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'permissive', p.polpermissive,
         'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                      WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
         'roles', (SELECT pg_catalog.array_agg(r.name ORDER BY r.name COLLATE pg_catalog."C")
                     FROM (SELECT CASE WHEN o.oid = 0 THEN 'public'
                                       ELSE pg_catalog.pg_get_userbyid(o.oid)::text END AS name
                             FROM pg_catalog.unnest(p.polroles) AS o(oid)) r),
         'using', pg_catalog.pg_get_expr(p.polqual, p.polrelid),
         'with_check', pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid),
         'comment', pg_catalog.obj_description(p.oid, 'pg_policy')
       )) AS props
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

/// Key `schema.name`, value without last_value/is_called (added from the relation).
/// Columns: key, schema, name, properties.
const SEQUENCES: &str = r#"
SELECT n.nspname || '.' || c.relname AS key, n.nspname::text, c.relname::text,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'type', pg_catalog.format_type(s.seqtypid, NULL),
         'start', s.seqstart,
         'increment', s.seqincrement,
         'min', s.seqmin,
         'max', s.seqmax,
         'cache', s.seqcache,
         'cycle', s.seqcycle,
         'owned_by', (SELECT dn.nspname || '.' || dc.relname || '.' || da.attname
                        FROM pg_catalog.pg_depend d
                        JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid
                        JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
                        JOIN pg_catalog.pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
                         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                         AND d.deptype IN ('a', 'i') LIMIT 1),
         'identity', NULLIF(EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                       AND d.objid = c.oid AND d.deptype = 'i'), false),
         'persistence', CASE c.relpersistence WHEN 'u' THEN 'unlogged' END,
         'owner', pg_catalog.pg_get_userbyid(c.relowner)::text,
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(COALESCE(c.relacl, pg_catalog.acldefault('s', c.relowner))) AS x(a)),
         'comment', pg_catalog.obj_description(c.oid, 'pg_class')
       )) AS props
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relkind = 'S'
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
"#;

/// Publications with their explicit tables (row filters and column lists from 15) and
/// schemas (15+); `via_partition_root` from 13.
fn publications_sql(version: i32) -> String {
    let via_root = if version >= 130000 {
        "p.pubviaroot"
    } else {
        "NULL::boolean"
    };
    let (columns, filter, schemas) = if version >= 150000 {
        (
            r#"COALESCE(' (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                                   FROM pg_catalog.pg_attribute a
                                  WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs)) || ')', '')"#,
            "COALESCE(' WHERE ' || pg_catalog.pg_get_expr(r.prqual, r.prrelid), '')",
            r#"(SELECT pg_catalog.array_agg(n.nspname::text ORDER BY n.nspname COLLATE pg_catalog."C")
                 FROM pg_catalog.pg_publication_namespace pn
                 JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid
                WHERE pn.pnpubid = p.oid)"#,
        )
    } else {
        ("''", "''", "NULL::text[]")
    };
    format!(
        r#"
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
"#
    )
}

const EVENT_TRIGGERS: &str = r#"
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
"#;

const STATISTICS: &str = r#"
SELECT n.nspname || '.' || s.stxname AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'definition', pg_catalog.pg_get_statisticsobjdef(s.oid),
         'owner', pg_catalog.pg_get_userbyid(s.stxowner)::text,
         'comment', pg_catalog.obj_description(s.oid, 'pg_statistic_ext')
       )) AS props
  FROM pg_catalog.pg_statistic_ext s
  JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass
                      AND e.objid = s.oid AND e.deptype = 'e')
"#;

/// Key `role on tables` or `role on tables in schema s`.
const DEFAULT_PRIVILEGES: &str = r#"
SELECT pg_catalog.pg_get_userbyid(a.defaclrole)::text || ' on '
       || CASE a.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
            WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE a.defaclobjtype::text END
       || COALESCE(' in schema ' || n.nspname, '') AS key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
         'acl', (SELECT pg_catalog.array_agg(x.a::text ORDER BY x.a::text COLLATE pg_catalog."C")
                   FROM pg_catalog.unnest(a.defaclacl) AS x(a)))) AS props
  FROM pg_catalog.pg_default_acl a
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = a.defaclnamespace
"#;

/// Non-system roles from pg_roles (readable without superuser; the password is never read).
const ROLES: &str = r#"
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
"#;

/// Key `role → member`; one entry per pair even where 16+ records several grantors.
fn memberships_sql(version: i32) -> String {
    let extra = if version >= 160000 {
        ", 'inherit_option', pg_catalog.bool_or(m.inherit_option), 'set_option', pg_catalog.bool_or(m.set_option)"
    } else {
        ""
    };
    format!(
        r#"
SELECT pg_catalog.pg_get_userbyid(m.roleid)::text || ' → ' || pg_catalog.pg_get_userbyid(m.member)::text AS key,
       pg_catalog.jsonb_build_object('admin_option', pg_catalog.bool_or(m.admin_option){extra}) AS props
  FROM pg_catalog.pg_auth_members m
 WHERE pg_catalog.pg_get_userbyid(m.member)::text !~ '^pg_'
 GROUP BY m.roleid, m.member
"#
    )
}

/// The current database under the fixed key `current` (a restore may use another name).
fn database_sql(version: i32) -> String {
    let provider = if version >= 150000 {
        "CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' END"
    } else {
        "NULL::text"
    };
    let icu_locale = if version >= 170000 {
        "d.datlocale::text"
    } else if version >= 150000 {
        "d.daticulocale::text"
    } else {
        "NULL::text"
    };
    let icu_rules = if version >= 160000 {
        "d.daticurules::text"
    } else {
        "NULL::text"
    };
    format!(
        r#"
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
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Diff

/// The order sections are reported in (containers before contents); sections not listed
/// follow alphabetically.
const SECTION_ORDER: &[&str] = &[
    "database",
    "roles",
    "memberships",
    "schemas",
    "extensions",
    "types",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "sequences",
    "views",
    "materialized_views",
    "functions",
    "triggers",
    "rules",
    "policies",
    "publications",
    "event_triggers",
    "statistics",
    "default_privileges",
];

/// Sections where objects present only after restore are fine: roles are cluster-wide, and a
/// scratch cluster has its own bootstrap superuser and perhaps more.
const CLUSTER_SECTIONS: &[&str] = &["roles", "memberships"];

/// One operator-readable line per difference, e.g.
///   `policy "profiles_select" on public.profiles: missing after restore`
///   `function public.is_admin(uid uuid): definition differs`
///   `sequence public.orders_id_seq: value 5000 in backup, 1 after restore`
///   `table public.orders: column "amount" type numeric(12,2) in backup, numeric after restore`
///   `index public.orders_user_idx: unexpected after restore`
///
/// A section absent from `expected` (a backup made before pgdr captured it) is not compared.
/// The contents of a schema or relation that is missing (or unexpected) as a whole are not
/// listed one by one. Roles and memberships that exist only after restore are not reported.
pub fn diff(
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
    opts: &DiffOptions,
) -> Vec<String> {
    let empty = BTreeMap::new();
    let mut sections: Vec<&str> = SECTION_ORDER
        .iter()
        .copied()
        .filter(|s| expected.sections.contains_key(*s))
        .collect();
    sections.extend(
        expected
            .sections
            .keys()
            .map(String::as_str)
            .filter(|s| !SECTION_ORDER.contains(s)),
    );

    // Objects inside a schema or relation that is missing (or unexpected) as a whole are not
    // listed one by one: the container's line says it.
    let gone = whole_containers_gone(expected, actual);
    let mut out = Vec::new();
    for section in sections {
        match section {
            "database" if !opts.database_properties => continue,
            "roles" | "memberships" if !opts.roles => continue,
            "default_privileges" if !opts.privileges => continue,
            _ => {}
        }
        let exp = &expected.sections[section];
        let act = actual.sections.get(section).unwrap_or(&empty);
        let keys: BTreeSet<&String> = exp.keys().chain(act.keys()).collect();
        for key in keys {
            // A column reads as part of its table: `table t: column "c" type ...`.
            let sep = if section == "columns" { " " } else { ": " };
            let label = || label(section, key, expected, actual);
            let (e, a) = (exp.get(key), act.get(key));
            if (e.is_none() || a.is_none()) && inside_gone(section, key, e.or(a), &gone) {
                continue;
            }
            match (e, a) {
                (Some(_), None) => out.push(format!("{}{sep}missing after restore", label())),
                (None, Some(_)) if !CLUSTER_SECTIONS.contains(&section) => {
                    out.push(format!("{}{sep}unexpected after restore", label()));
                }
                (Some(e), Some(a)) if e != a => {
                    let lines = props_diff(section, e, a, opts);
                    let l = label();
                    out.extend(lines.into_iter().map(|line| format!("{l}{sep}{line}")));
                }
                _ => {}
            }
        }
    }
    out
}

/// Sections whose keys start with `schema.`.
const SCHEMA_QUALIFIED: &[&str] = &[
    "types",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "sequences",
    "views",
    "materialized_views",
    "functions",
    "triggers",
    "rules",
    "policies",
    "statistics",
];

/// Sections whose keys are `schema.relation.name`.
const RELATION_CHILDREN: &[&str] = &["columns", "constraints", "triggers", "rules", "policies"];

/// Schemas and relations present on one side only.
fn whole_containers_gone(
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
) -> BTreeSet<(&'static str, String)> {
    let mut gone = BTreeSet::new();
    for (kind, sections) in [
        ("schema", &["schemas"][..]),
        ("relation", &["tables", "views", "materialized_views"][..]),
    ] {
        for section in sections {
            let (Some(e), Some(a)) = (
                expected.sections.get(*section),
                actual.sections.get(*section),
            ) else {
                continue;
            };
            for k in e.keys().filter(|k| !a.contains_key(*k)) {
                gone.insert((kind, k.clone()));
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                gone.insert((kind, k.clone()));
            }
        }
    }
    gone
}

/// Whether an object one side lacks sits in a schema or relation that side lacks too.
fn inside_gone(
    section: &str,
    key: &str,
    props: Option<&Value>,
    gone: &BTreeSet<(&'static str, String)>,
) -> bool {
    if SCHEMA_QUALIFIED.contains(&section) {
        if let Some((schema, _)) = key.split_once('.') {
            if gone.contains(&("schema", schema.to_string())) {
                return true;
            }
        }
    }
    let relation = if RELATION_CHILDREN.contains(&section) {
        key.rsplit_once('.').map(|(rel, _)| rel.to_string())
    } else if section == "indexes" {
        props
            .and_then(|p| p.get("table"))
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    relation.is_some_and(|r| gone.contains(&("relation", r)))
}

/// How an object is named in a diff line.
fn label(
    section: &str,
    key: &str,
    expected: &SchemaFingerprint,
    actual: &SchemaFingerprint,
) -> String {
    let prop = |name: &str| -> Option<String> {
        [expected, actual].iter().find_map(|fp| {
            fp.sections
                .get(section)?
                .get(key)?
                .get(name)?
                .as_str()
                .map(str::to_string)
        })
    };
    // Sub-objects are keyed `schema.table.name`.
    let split = || match key.rsplit_once('.') {
        Some((rel, name)) => (rel.to_string(), name.to_string()),
        None => (String::new(), key.to_string()),
    };
    match section {
        "tables" => format!("{} {key}", prop("kind").unwrap_or_else(|| "table".into())),
        "columns" => {
            let (rel, col) = split();
            let in_section = |s: &str| {
                [expected, actual]
                    .iter()
                    .any(|fp| fp.sections.get(s).is_some_and(|m| m.contains_key(&rel)))
            };
            let kind = if in_section("views") {
                "view"
            } else if in_section("materialized_views") {
                "materialized view"
            } else {
                "table"
            };
            format!("{kind} {rel}: column \"{col}\"")
        }
        "constraints" | "policies" | "triggers" | "rules" => {
            let (rel, name) = split();
            let what = match section {
                "constraints" => "constraint",
                "policies" => "policy",
                "triggers" => "trigger",
                _ => "rule",
            };
            format!("{what} \"{name}\" on {rel}")
        }
        "functions" => format!(
            "{} {key}",
            prop("kind").unwrap_or_else(|| "function".into())
        ),
        "types" => match prop("kind").as_deref() {
            Some("domain") => format!("domain {key}"),
            _ => format!("type {key}"),
        },
        "indexes" => format!("index {key}"),
        "sequences" => format!("sequence {key}"),
        "views" => format!("view {key}"),
        "materialized_views" => format!("materialized view {key}"),
        "schemas" => format!("schema {key}"),
        "extensions" => format!("extension {key}"),
        "publications" => format!("publication {key}"),
        "roles" => format!("role {key}"),
        "memberships" => format!("role membership {key}"),
        "database" => "database".to_string(),
        "default_privileges" => format!("default privileges of {key}"),
        "event_triggers" => format!("event trigger {key}"),
        "statistics" => format!("statistics object {key}"),
        other => format!("{} {key}", other.replace('_', " ")),
    }
}

/// The differing properties of one object, each as the text after `label: `.
fn props_diff(section: &str, e: &Value, a: &Value, opts: &DiffOptions) -> Vec<String> {
    let (Some(e), Some(a)) = (e.as_object(), a.as_object()) else {
        return vec![format!(
            "{} in backup, {} after restore",
            show(Some(e)),
            show(Some(a))
        )];
    };
    let mut out = Vec::new();
    let mut names: BTreeSet<&str> = e.keys().chain(a.keys()).map(String::as_str).collect();

    if section == "sequences" {
        names.remove("last_value");
        names.remove("is_called");
        if let Some(line) = sequence_value_diff(e, a, opts.sequence_values) {
            out.push(line);
        }
    }

    for name in names {
        let (x, y) = (e.get(name), a.get(name));
        if x == y {
            continue;
        }
        match name {
            // An index's table is part of its definition, which is compared.
            "table" if section == "indexes" => {}
            "owner" if !opts.owners => {}
            "acl" if !opts.privileges => {}
            "acl" => acl_diff(x, y, &mut out),
            "definition_sha256" | "body_sha256" => out.push("definition differs".into()),
            "settings" | "config" => settings_diff(x, y, "", &mut out),
            "role_settings" => {
                let (xo, yo) = (object(x), object(y));
                let roles: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
                for role in roles {
                    if xo.get(role) != yo.get(role) {
                        let suffix = format!(" for role {role}");
                        settings_diff(xo.get(role), yo.get(role), &suffix, &mut out);
                    }
                }
            }
            // Comments and setting values may hold secrets: named, never shown (the lines
            // land in logs and in plaintext records).
            "comment" => out.push(presence_change("comment", x, y)),
            _ if x.is_some_and(Value::is_object) || y.is_some_and(Value::is_object) => {
                // e.g. a domain's constraints: name → definition.
                let (xo, yo) = (object(x), object(y));
                let subs: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
                let what = singular(name);
                for sub in subs {
                    if xo.get(sub) != yo.get(sub) {
                        out.push(text_change(
                            &format!("{what} \"{sub}\""),
                            xo.get(sub),
                            yo.get(sub),
                        ));
                    }
                }
            }
            _ => {
                // A flag left out when false (jsonb_strip_nulls of NULLIF(x, false)).
                let absent_false = |v: Option<&Value>, other: Option<&Value>| match (v, other) {
                    (None, Some(Value::Bool(_))) => Some(Value::Bool(false)),
                    (v, _) => v.cloned(),
                };
                let (x2, y2) = (absent_false(x, y), absent_false(y, x));
                if x2 != y2 {
                    out.push(text_change(
                        &name.replace('_', " "),
                        x2.as_ref(),
                        y2.as_ref(),
                    ));
                }
            }
        }
    }
    out
}

fn object(v: Option<&Value>) -> serde_json::Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn singular(name: &str) -> String {
    let words = name.replace('_', " ");
    words.strip_suffix('s').map(str::to_string).unwrap_or(words)
}

/// `setting search_path differs`, `setting x set in backup, not set after restore`: names,
/// never values.
fn settings_diff(x: Option<&Value>, y: Option<&Value>, suffix: &str, out: &mut Vec<String>) {
    let (xo, yo) = (object(x), object(y));
    let names: BTreeSet<&String> = xo.keys().chain(yo.keys()).collect();
    for n in names {
        let (a, b) = (xo.get(n), yo.get(n));
        if a != b {
            out.push(presence_change(&format!("setting {n}{suffix}"), a, b));
        }
    }
}

/// `{what} differs`, or which side lacks it; the values are not shown.
fn presence_change(what: &str, x: Option<&Value>, y: Option<&Value>) -> String {
    let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    match (set(x), set(y)) {
        (true, false) => format!("{what} set in backup, not set after restore"),
        (false, true) => format!("{what} not set in backup, set after restore"),
        _ => format!("{what} differs"),
    }
}

/// Longest value shown in a line; longer ones are reported as "differs".
const SHOW_MAX: usize = 200;

/// `{what} {x} in backup, {y} after restore`, or `{what} differs` when a value is too long to
/// read in one line.
fn text_change(what: &str, x: Option<&Value>, y: Option<&Value>) -> String {
    let (a, b) = (show(x), show(y));
    if a.chars().count() > SHOW_MAX || b.chars().count() > SHOW_MAX {
        format!("{what} differs")
    } else {
        format!("{what} {a} in backup, {b} after restore")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) if s.is_empty() => "\"\"".into(),
        Some(Value::String(s)) => one_line(s),
        Some(Value::Array(items)) if items.is_empty() => "none".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| show(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_string(),
    }
}

fn sequence_value_diff(
    e: &serde_json::Map<String, Value>,
    a: &serde_json::Map<String, Value>,
    mode: SequenceValues,
) -> Option<String> {
    let pos = |m: &serde_json::Map<String, Value>| {
        Some((
            m.get("last_value")?.as_i64()?,
            m.get("is_called")?.as_bool()?,
        ))
    };
    let (pe, pa) = (pos(e), pos(a));
    if pe == pa || mode == SequenceValues::Ignore {
        return None;
    }
    if let (SequenceValues::NotBehind, Some((le, ce)), Some((la, ca))) = (mode, pe, pa) {
        // Compare the value the next nextval() would return.
        let inc = a
            .get("increment")
            .or(e.get("increment"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let next = |last: i64, called: bool| {
            if called {
                last.saturating_add(inc)
            } else {
                last
            }
        };
        let (ne, na) = (next(le, ce), next(la, ca));
        if (inc >= 0 && na >= ne) || (inc < 0 && na <= ne) {
            return None;
        }
    }
    let fmt = |p: Option<(i64, bool)>| match p {
        None => "unknown".to_string(),
        Some((v, true)) => v.to_string(),
        Some((v, false)) => format!("{v} (not yet used)"),
    };
    Some(format!(
        "value {} in backup, {} after restore",
        fmt(pe),
        fmt(pa)
    ))
}

// ACLs: compared per grantee, shown in words.

/// One aclitem `grantee=privs/grantor`, names possibly double-quoted; empty grantee = PUBLIC.
fn parse_aclitem(s: &str) -> Option<(String, String, String)> {
    fn name(s: &str) -> Option<(String, &str)> {
        if let Some(rest) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if rest[i + 1..].starts_with('"') {
                        out.push('"');
                        chars.next();
                    } else {
                        return Some((out, &rest[i + 1..]));
                    }
                } else {
                    out.push(c);
                }
            }
            None
        } else {
            let end = s.find(['=', '/']).unwrap_or(s.len());
            Some((s[..end].to_string(), &s[end..]))
        }
    }
    let (grantee, rest) = name(s)?;
    let rest = rest.strip_prefix('=')?;
    let (privs, grantor) = rest.split_once('/')?;
    let (grantor, tail) = name(grantor)?;
    if !tail.is_empty() {
        return None;
    }
    Some((grantee, privs.to_string(), grantor))
}

fn privilege_words(privs: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for c in privs.chars() {
        if c == '*' {
            if let Some(last) = words.last_mut() {
                last.push_str(" WITH GRANT OPTION");
            }
            continue;
        }
        let w = match c {
            'r' => "SELECT",
            'w' => "UPDATE",
            'a' => "INSERT",
            'd' => "DELETE",
            'D' => "TRUNCATE",
            'x' => "REFERENCES",
            't' => "TRIGGER",
            'X' => "EXECUTE",
            'U' => "USAGE",
            'C' => "CREATE",
            'c' => "CONNECT",
            'T' => "TEMPORARY",
            'm' => "MAINTAIN",
            's' => "SET",
            'A' => "ALTER SYSTEM",
            other => {
                words.push(other.to_string());
                continue;
            }
        };
        words.push(w.to_string());
    }
    words.join(", ")
}

type AclMap = BTreeMap<String, BTreeSet<(String, String)>>;

fn acl_map(v: Option<&Value>) -> Option<AclMap> {
    let mut map = AclMap::new();
    let Some(v) = v else { return Some(map) };
    for item in v.as_array()? {
        let (grantee, privs, grantor) = parse_aclitem(item.as_str()?)?;
        let grantee = if grantee.is_empty() {
            "PUBLIC".to_string()
        } else {
            grantee
        };
        map.entry(grantee)
            .or_default()
            .insert((privilege_words(&privs), grantor));
    }
    Some(map)
}

/// `privileges of anon: SELECT in backup, none after restore`; the grantor is named only when
/// it is all that differs.
fn acl_diff(x: Option<&Value>, y: Option<&Value>, out: &mut Vec<String>) {
    let (Some(mx), Some(my)) = (acl_map(x), acl_map(y)) else {
        out.push(text_change("privileges", x, y));
        return;
    };
    let grantees: BTreeSet<&String> = mx.keys().chain(my.keys()).collect();
    for g in grantees {
        let (a, b) = (mx.get(g), my.get(g));
        if a == b {
            continue;
        }
        let privs = |s: Option<&BTreeSet<(String, String)>>| {
            s.map(|s| s.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
        };
        let with_grantor = privs(a) == privs(b);
        let fmt = |s: Option<&BTreeSet<(String, String)>>| match s {
            None => "none".to_string(),
            Some(s) => s
                .iter()
                .map(|(p, grantor)| {
                    let p = if p.is_empty() { "none" } else { p.as_str() };
                    if with_grantor {
                        format!("{p} (granted by {grantor})")
                    } else {
                        p.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.push(format!(
            "privileges of {g}: {} in backup, {} after restore",
            fmt(a),
            fmt(b)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(sections: Value) -> SchemaFingerprint {
        serde_json::from_value(json!({ "sections": sections })).unwrap()
    }

    fn sample() -> SchemaFingerprint {
        fp(json!({
            "tables": {
                "public.orders": {"kind": "table", "owner": "app_owner", "row_level_security": true,
                                  "force_row_level_security": true,
                                  "acl": ["app_owner=arwdDxt/app_owner", "authenticated=arwdDxt/app_owner"]},
                "public.profiles": {"kind": "table", "owner": "postgres", "row_level_security": true,
                                    "force_row_level_security": false,
                                    "acl": ["anon=r/postgres", "postgres=arwdDxt/postgres"],
                                    "comment": "User profiles"}
            },
            "columns": {
                "public.orders.amount": {"position": 4, "type": "numeric(12,2)", "not_null": true}
            },
            "views": {"public.v": {"owner": "postgres", "definition_sha256": "aa"}},
            "indexes": {
                "public.orders_user_idx": {"table": "public.orders", "definition": "CREATE INDEX orders_user_idx ON public.orders USING btree (user_id)"}
            },
            "policies": {
                "public.profiles.profiles_select": {"command": "SELECT", "permissive": true,
                                                    "roles": ["anon", "authenticated"], "using": "(NOT is_private)"}
            },
            "functions": {
                "public.is_admin(uid uuid)": {"kind": "function", "security_definer": true,
                                              "config": {"search_path": "public, auth"},
                                              "body_sha256": "abc"}
            },
            "sequences": {
                "public.orders_id_seq": {"increment": 1, "last_value": 5000, "is_called": true}
            },
            "roles": {"anon": {"login": false}, "authenticated": {"login": false}},
            "memberships": {"anon → authenticated": {"admin_option": false}},
            "database": {"current": {"owner": "postgres", "comment": "sample",
                                      "settings": {"app.settings.environment": "demo"}}}
        }))
    }

    fn set(f: &mut SchemaFingerprint, section: &str, key: &str, prop: &str, v: Value) {
        let obj = f
            .sections
            .get_mut(section)
            .unwrap()
            .get_mut(key)
            .unwrap()
            .as_object_mut()
            .unwrap();
        if v.is_null() {
            obj.remove(prop);
        } else {
            obj.insert(prop.into(), v);
        }
    }

    fn d(e: &SchemaFingerprint, a: &SchemaFingerprint) -> Vec<String> {
        diff(e, a, &DiffOptions::default())
    }

    #[test]
    fn identical_is_empty() {
        assert!(d(&sample(), &sample()).is_empty());
    }

    #[test]
    fn missing_and_unexpected() {
        let e = sample();
        let mut a = sample();
        a.sections.get_mut("policies").unwrap().clear();
        a.sections.get_mut("indexes").unwrap().insert(
            "public.orders_extra_idx".into(),
            json!({"definition": "CREATE INDEX ..."}),
        );
        assert_eq!(
            d(&e, &a),
            [
                "index public.orders_extra_idx: unexpected after restore",
                "policy \"profiles_select\" on public.profiles: missing after restore",
            ]
        );
        // And the other way round.
        assert_eq!(
            d(&a, &e),
            [
                "index public.orders_extra_idx: missing after restore",
                "policy \"profiles_select\" on public.profiles: unexpected after restore",
            ]
        );
    }

    #[test]
    fn changed_properties() {
        let e = sample();
        let mut a = sample();
        set(
            &mut a,
            "columns",
            "public.orders.amount",
            "type",
            json!("numeric"),
        );
        set(
            &mut a,
            "functions",
            "public.is_admin(uid uuid)",
            "definition_sha256",
            json!("def"),
        );
        set(
            &mut a,
            "tables",
            "public.orders",
            "force_row_level_security",
            json!(false),
        );
        set(
            &mut a,
            "policies",
            "public.profiles.profiles_select",
            "using",
            json!("true"),
        );
        set(
            &mut a,
            "policies",
            "public.profiles.profiles_select",
            "roles",
            json!(["authenticated"]),
        );
        set(&mut a, "tables", "public.profiles", "comment", Value::Null);
        assert_eq!(
            d(&e, &a),
            [
                "table public.orders: force row level security true in backup, false after restore",
                "table public.profiles: comment set in backup, not set after restore",
                "table public.orders: column \"amount\" type numeric(12,2) in backup, numeric after restore",
                "function public.is_admin(uid uuid): definition differs",
                "policy \"profiles_select\" on public.profiles: roles anon, authenticated in backup, authenticated after restore",
                "policy \"profiles_select\" on public.profiles: using (NOT is_private) in backup, true after restore",
            ]
        );
    }

    #[test]
    fn contents_of_a_missing_table_or_schema_are_not_listed() {
        let e = sample();
        let mut a = sample();
        a.sections
            .get_mut("tables")
            .unwrap()
            .remove("public.orders");
        a.sections
            .get_mut("columns")
            .unwrap()
            .remove("public.orders.amount");
        a.sections.get_mut("indexes").unwrap().clear();
        assert_eq!(d(&e, &a), ["table public.orders: missing after restore"]);

        let mut e2 = sample();
        e2.sections.insert(
            "schemas".into(),
            [("public".to_string(), json!({"owner": "postgres"}))].into(),
        );
        let mut a2 = e2.clone();
        a2.sections.get_mut("schemas").unwrap().clear();
        for section in [
            "tables",
            "columns",
            "views",
            "indexes",
            "policies",
            "functions",
            "sequences",
        ] {
            a2.sections.get_mut(section).unwrap().clear();
        }
        assert_eq!(d(&e2, &a2), ["schema public: missing after restore"]);
    }

    #[test]
    fn view_columns_are_named_as_view_columns() {
        let mut e = sample();
        e.sections
            .get_mut("columns")
            .unwrap()
            .insert("public.v.x".into(), json!({"type": "integer"}));
        let mut a = e.clone();
        set(&mut a, "columns", "public.v.x", "type", json!("bigint"));
        assert_eq!(
            d(&e, &a),
            ["view public.v: column \"x\" type integer in backup, bigint after restore"]
        );
    }

    #[test]
    fn function_config_and_security() {
        let e = sample();
        let mut a = sample();
        set(
            &mut a,
            "functions",
            "public.is_admin(uid uuid)",
            "config",
            Value::Null,
        );
        set(
            &mut a,
            "functions",
            "public.is_admin(uid uuid)",
            "security_definer",
            json!(false),
        );
        assert_eq!(
            d(&e, &a),
            [
                "function public.is_admin(uid uuid): setting search_path set in backup, not set after restore",
                "function public.is_admin(uid uuid): security definer true in backup, false after restore",
            ]
        );
    }

    #[test]
    fn sequence_value_wording() {
        let e = sample();
        let mut a = sample();
        set(
            &mut a,
            "sequences",
            "public.orders_id_seq",
            "last_value",
            json!(1),
        );
        assert_eq!(
            d(&e, &a),
            ["sequence public.orders_id_seq: value 5000 in backup, 1 after restore"]
        );
        set(
            &mut a,
            "sequences",
            "public.orders_id_seq",
            "is_called",
            json!(false),
        );
        assert_eq!(
            d(&e, &a),
            ["sequence public.orders_id_seq: value 5000 in backup, 1 (not yet used) after restore"]
        );

        // Ahead is fine with NotBehind, behind is not.
        let not_behind = DiffOptions {
            sequence_values: SequenceValues::NotBehind,
            ..Default::default()
        };
        let mut ahead = sample();
        set(
            &mut ahead,
            "sequences",
            "public.orders_id_seq",
            "last_value",
            json!(5007),
        );
        assert!(diff(&e, &ahead, &not_behind).is_empty());
        assert_eq!(diff(&e, &a, &not_behind).len(), 1);
        // 5001 not yet used hands out 5001 next, as 5000 used does.
        let mut same_next = sample();
        set(
            &mut same_next,
            "sequences",
            "public.orders_id_seq",
            "last_value",
            json!(5001),
        );
        set(
            &mut same_next,
            "sequences",
            "public.orders_id_seq",
            "is_called",
            json!(false),
        );
        assert!(diff(&e, &same_next, &not_behind).is_empty());
        let ignore = DiffOptions {
            sequence_values: SequenceValues::Ignore,
            ..Default::default()
        };
        assert!(diff(&e, &a, &ignore).is_empty());
    }

    #[test]
    fn privileges_in_words() {
        let e = sample();
        let mut a = sample();
        set(
            &mut a,
            "tables",
            "public.profiles",
            "acl",
            json!(["postgres=arwdDxt/postgres"]),
        );
        set(
            &mut a,
            "tables",
            "public.orders",
            "acl",
            json!(["app_owner=arwdDxt/app_owner", "authenticated=r*w/postgres"]),
        );
        assert_eq!(
            d(&e, &a),
            [
                "table public.orders: privileges of authenticated: INSERT, SELECT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER in backup, SELECT WITH GRANT OPTION, UPDATE after restore",
                "table public.profiles: privileges of anon: SELECT in backup, none after restore",
            ]
        );
        let mut g = sample();
        set(
            &mut g,
            "tables",
            "public.profiles",
            "acl",
            json!([
                "=r/postgres",
                "\"odd \"\"name\"=r/postgres",
                "postgres=arwdDxt/postgres"
            ]),
        );
        assert_eq!(
            d(&e, &g),
            [
                "table public.profiles: privileges of PUBLIC: none in backup, SELECT after restore",
                "table public.profiles: privileges of anon: SELECT in backup, none after restore",
                "table public.profiles: privileges of odd \"name: none in backup, SELECT after restore",
            ]
        );
        let no_privs = DiffOptions {
            privileges: false,
            ..Default::default()
        };
        assert!(diff(&e, &a, &no_privs).is_empty());
    }

    #[test]
    fn grantor_named_only_when_it_alone_differs() {
        let e = sample();
        let mut a = sample();
        set(
            &mut a,
            "tables",
            "public.profiles",
            "acl",
            json!(["anon=r/other", "postgres=arwdDxt/postgres"]),
        );
        assert_eq!(
            d(&e, &a),
            ["table public.profiles: privileges of anon: SELECT (granted by postgres) in backup, SELECT (granted by other) after restore"]
        );
    }

    #[test]
    fn roles_extra_after_restore_tolerated() {
        let e = sample();
        let mut a = sample();
        a.sections.get_mut("roles").unwrap().insert(
            "scratch_admin".into(),
            json!({"login": true, "superuser": true}),
        );
        a.sections
            .get_mut("memberships")
            .unwrap()
            .insert("anon → scratch_admin".into(), json!({"admin_option": true}));
        assert!(d(&e, &a).is_empty());

        // Missing or changed ones are reported.
        let mut m = sample();
        m.sections.get_mut("roles").unwrap().remove("anon");
        set(&mut m, "roles", "authenticated", "login", json!(true));
        m.sections.get_mut("memberships").unwrap().clear();
        assert_eq!(
            d(&e, &m),
            [
                "role anon: missing after restore",
                "role authenticated: login false in backup, true after restore",
                "role membership anon → authenticated: missing after restore",
            ]
        );
        let no_roles = DiffOptions {
            roles: false,
            ..Default::default()
        };
        assert!(diff(&e, &m, &no_roles).is_empty());
    }

    #[test]
    fn database_properties() {
        let e = sample();
        let mut a = sample();
        set(&mut a, "database", "current", "comment", Value::Null);
        set(&mut a, "database", "current", "settings", Value::Null);
        set(
            &mut a,
            "database",
            "current",
            "role_settings",
            json!({"authenticated": {"statement_timeout": "5s"}}),
        );
        assert_eq!(
            d(&e, &a),
            [
                "database: comment set in backup, not set after restore",
                "database: setting statement_timeout for role authenticated not set in backup, set after restore",
                "database: setting app.settings.environment set in backup, not set after restore",
            ]
        );
        let skip = DiffOptions {
            database_properties: false,
            ..Default::default()
        };
        assert!(diff(&e, &a, &skip).is_empty());
    }

    #[test]
    fn owners_can_be_skipped() {
        let e = sample();
        let mut a = sample();
        set(&mut a, "views", "public.v", "owner", json!("someone"));
        assert_eq!(
            d(&e, &a),
            ["view public.v: owner postgres in backup, someone after restore"]
        );
        let skip = DiffOptions {
            owners: false,
            ..Default::default()
        };
        assert!(diff(&e, &a, &skip).is_empty());
    }

    #[test]
    fn section_absent_from_backup_is_not_compared() {
        let mut e = sample();
        e.sections.remove("policies");
        assert!(d(&e, &sample()).is_empty());
        // Absent after restore: everything in it is missing.
        let mut a = sample();
        a.sections.remove("indexes");
        assert_eq!(
            d(&sample(), &a),
            ["index public.orders_user_idx: missing after restore"]
        );
    }

    #[test]
    fn long_values_are_not_printed() {
        let e = sample();
        let mut a = sample();
        let long = "x".repeat(300);
        set(
            &mut a,
            "indexes",
            "public.orders_user_idx",
            "definition",
            json!(long),
        );
        assert_eq!(
            d(&e, &a),
            ["index public.orders_user_idx: definition differs"]
        );
    }

    #[test]
    fn aclitem_parsing() {
        assert_eq!(
            parse_aclitem("=U/postgres"),
            Some(("".into(), "U".into(), "postgres".into()))
        );
        assert_eq!(
            parse_aclitem("\"a=b/c\"=r*/\"x y\""),
            Some(("a=b/c".into(), "r*".into(), "x y".into()))
        );
        assert_eq!(parse_aclitem("garbage"), None);
        assert_eq!(privilege_words("r*w"), "SELECT WITH GRANT OPTION, UPDATE");
    }

    #[test]
    fn json_is_sorted_and_round_trips() {
        let f = sample();
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.find("\"columns\"").unwrap() < text.find("\"tables\"").unwrap());
        let back: SchemaFingerprint = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
    }
}
