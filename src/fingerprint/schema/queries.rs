//! The capture queries. The SQL itself is in `src/fingerprint/sql/*.sql` (readable in
//! an SQL editor); the version-dependent pieces, `{name}` placeholders there, are filled in here.
//!
//! Fully qualified catalog names throughout; names are built as `schema.name`
//! from the catalog (never `::regclass::text`, whose output depends on search_path).

const SCHEMAS: &str = include_str!("../sql/schemas.sql");

const EXTENSIONS: &str = include_str!("../sql/extensions.sql");

const TYPES: &str = include_str!("../sql/types.sql");

const TABLES: &str = include_str!("../sql/tables.sql");

/// Columns of tables, views and materialized views (their comments, defaults and privileges
/// can be set too). `position` counts only live columns, so dropped columns in the source
/// do not show.
const COLUMNS: &str = include_str!("../sql/columns.sql");

const CONSTRAINTS: &str = include_str!("../sql/constraints.sql");

/// Indexes pg_dump would restore: valid and live ones (partitioned indexes are never valid
/// until all partitions have theirs, and pg_dump dumps them regardless).
const INDEXES: &str = include_str!("../sql/indexes.sql");

/// Views (`v`) or materialized views (`m`).
fn views_sql(relkind: char) -> String {
    include_str!("../sql/views.sql").replace("{relkind}", &relkind.to_string())
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
    include_str!("../sql/functions.sql").replace("{body}", body)
}

const TRIGGERS: &str = include_str!("../sql/triggers.sql");

const RULES: &str = include_str!("../sql/rules.sql");

const POLICIES: &str = include_str!("../sql/policies.sql");

/// Key `schema.name`, value without last_value/is_called (added from the relation).
/// Columns: key, schema, name, properties.
pub(super) const SEQUENCES: &str = include_str!("../sql/sequences.sql");

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
    include_str!("../sql/publications.sql")
        .replace("{columns}", columns)
        .replace("{filter}", filter)
        .replace("{schemas}", schemas)
        .replace("{via_root}", via_root)
}

const EVENT_TRIGGERS: &str = include_str!("../sql/event_triggers.sql");

const STATISTICS: &str = include_str!("../sql/statistics.sql");

/// Key `role on tables` or `role on tables in schema s`.
const DEFAULT_PRIVILEGES: &str = include_str!("../sql/default_privileges.sql");

/// Non-system roles from pg_roles (readable without superuser; the password is never read).
const ROLES: &str = include_str!("../sql/roles.sql");

/// Key `role → member`; one entry per pair even where 16+ records several grantors.
fn memberships_sql(version: i32) -> String {
    let extra = if version >= 160000 {
        ", 'inherit_option', pg_catalog.bool_or(m.inherit_option), 'set_option', pg_catalog.bool_or(m.set_option)"
    } else {
        ""
    };
    include_str!("../sql/memberships.sql").replace("{extra}", extra)
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
    include_str!("../sql/database.sql")
        .replace("{icu_locale}", icu_locale)
        .replace("{icu_rules}", icu_rules)
        .replace("{provider}", provider)
}

/// Every section but `sequences`, as (section, SQL) in capture order.
pub(super) fn queries(version: i32) -> Vec<(&'static str, String)> {
    vec![
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
    ]
}
