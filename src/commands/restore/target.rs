//! What is at the target before a restore: whether the database holds anything at all, and
//! whether a `<name>_restoring` left there is one pgdr made (and may drop).

use tokio_postgres::Client;

use crate::catalog::restoring::RestoringMark;
use crate::catalog::Catalog;
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::restore::db_message;
use crate::sql::quote_ident as qi;

/// What is at the target name now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    Missing,
    /// No user object of any kind.
    Empty,
    /// What it holds, by kind: ("tables", 3), ("functions", 1), ...
    NonEmpty(Vec<(String, i64)>),
}

impl TargetState {
    /// "3 tables, 1 function(s)".
    pub fn describe(contents: &[(String, i64)]) -> String {
        contents
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every kind of object `pg_dump` would dump from a database, plus large objects and
/// database-level settings, counted by kind. Objects that belong to an extension count as
/// the extension; the schemas PostgreSQL makes (pg_catalog, information_schema, toast and
/// temp schemas, `public`) and the `plpgsql` extension of every new database do not count.
const CONTENTS: &str = "
WITH user_ns AS (
  SELECT n.oid FROM pg_namespace n
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
kinds(kind, n) AS (
  SELECT 'schemas', count(*) FROM pg_namespace n JOIN user_ns u ON u.oid = n.oid
   WHERE n.nspname <> 'public'
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
  UNION ALL
  SELECT CASE c.relkind WHEN 'r' THEN 'tables' WHEN 'p' THEN 'tables' WHEN 'v' THEN 'views'
              WHEN 'm' THEN 'materialized views' WHEN 'f' THEN 'foreign tables'
              WHEN 'S' THEN 'sequences' ELSE 'composite types' END, count(*)
    FROM pg_class c JOIN user_ns u ON u.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
   GROUP BY 1
  UNION ALL
  SELECT 'functions or procedures', count(*) FROM pg_proc p JOIN user_ns u ON u.oid = p.pronamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
  UNION ALL
  SELECT 'types or domains', count(*) FROM pg_type t JOIN user_ns u ON u.oid = t.typnamespace
   WHERE t.typtype IN ('b', 'd', 'e', 'r', 'p') AND t.typcategory <> 'A'
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
  UNION ALL
  SELECT 'operators', count(*) FROM pg_operator o JOIN user_ns u ON u.oid = o.oprnamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_operator'::regclass AND objid = o.oid)
  UNION ALL
  SELECT 'collations', count(*) FROM pg_collation o JOIN user_ns u ON u.oid = o.collnamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_collation'::regclass AND objid = o.oid)
  UNION ALL
  SELECT 'text search configurations or dictionaries', (
    SELECT count(*) FROM pg_ts_config o JOIN user_ns u ON u.oid = o.cfgnamespace
     WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_ts_config'::regclass AND objid = o.oid))
    + (SELECT count(*) FROM pg_ts_dict o JOIN user_ns u ON u.oid = o.dictnamespace
     WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_ts_dict'::regclass AND objid = o.oid))
  UNION ALL
  SELECT 'conversions', count(*) FROM pg_conversion o JOIN user_ns u ON u.oid = o.connamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_conversion'::regclass AND objid = o.oid)
  UNION ALL
  SELECT 'statistics objects', count(*) FROM pg_statistic_ext o JOIN user_ns u ON u.oid = o.stxnamespace
  UNION ALL
  SELECT 'extensions', count(*) FROM pg_extension WHERE extname <> 'plpgsql'
  UNION ALL
  SELECT 'languages', count(*) FROM pg_language l
   WHERE l.lanname NOT IN ('internal', 'c', 'sql', 'plpgsql')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_language'::regclass AND objid = l.oid)
  UNION ALL
  SELECT 'casts', count(*) FROM pg_cast c WHERE c.oid >= 16384
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_cast'::regclass AND objid = c.oid)
  UNION ALL
  SELECT 'foreign data wrappers or servers', (
    SELECT count(*) FROM pg_foreign_data_wrapper w
     WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_foreign_data_wrapper'::regclass AND objid = w.oid))
    + (SELECT count(*) FROM pg_foreign_server)
  UNION ALL
  SELECT 'event triggers', count(*) FROM pg_event_trigger
  UNION ALL
  SELECT 'publications', count(*) FROM pg_publication
  UNION ALL
  SELECT 'subscriptions', count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL
  SELECT 'default privileges', count(*) FROM pg_default_acl
  UNION ALL
  SELECT 'large objects', count(*) FROM pg_largeobject_metadata
  UNION ALL
  SELECT 'database settings (ALTER DATABASE ... SET)', count(*) FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT kind, n FROM kinds WHERE n > 0 ORDER BY kind";

pub async fn inspect(client: &Client, target: &Database, name: &str) -> Result<TargetState> {
    let row = client
        .query_opt(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| PgdrError::database(format!("inspecting the target: {}", db_message(&e))))?;
    let Some(row) = row else {
        return Ok(TargetState::Missing);
    };
    let allow: bool = row.get(0);
    if !allow {
        return Err(PgdrError::usage(format!(
            "target database '{name}' does not allow connections, so pgdr cannot see what it holds"
        ))
        .hint(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true, or restore under another name",
            qi(name)
        )));
    }
    let c = crate::source::connect(target).await?;
    let contents: Vec<(String, i64)> = c
        .query(CONTENTS, &[])
        .await
        .map_err(|e| PgdrError::database(format!("inspecting '{name}': {}", db_message(&e))))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(if contents.is_empty() {
        TargetState::Empty
    } else {
        TargetState::NonEmpty(contents)
    })
}

/// A `<name>_restoring` found on the target before a `--swap`/`--clean`.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub name: String,
    /// The mark pgdr wrote when it created it.
    pub mark: RestoringMark,
}

/// The leftover `restore_name` on the server, if any: `Ok(Some)` for one pgdr marked,
/// an error naming it for any other database of that name (never dropped).
pub async fn leftover(
    client: &Client,
    catalog: &Catalog,
    repo_db: &str,
    server: &str,
    restore_name: &str,
) -> Result<Option<Leftover>> {
    let row = client
        .query_opt(
            "SELECT oid::bigint FROM pg_database WHERE datname = $1",
            &[&restore_name],
        )
        .await
        .map_err(|e| PgdrError::database(format!("inspecting the target: {}", db_message(&e))))?;
    let Some(row) = row else { return Ok(None) };
    let oid = row.get::<_, i64>(0) as u32;
    match catalog.restoring_mark(repo_db, server, restore_name).await? {
        Some(mark) if mark.names(server, restore_name, oid) => Ok(Some(Leftover {
            name: restore_name.to_string(),
            mark,
        })),
        _ => Err(PgdrError::usage(format!(
            "database '{restore_name}' exists on the target and pgdr has no record of making it; pgdr restores into that name and will not drop a database it did not make"
        ))
        .hint(format!(
            "look at what it holds, then drop or rename it yourself (DROP DATABASE {})",
            qi(restore_name)
        ))
        .hint("or restore under another name: end --target with /NEWNAME")),
    }
}

/// The OID of a database, if it exists.
pub async fn oid(client: &Client, name: &str) -> Result<Option<u32>> {
    Ok(client
        .query_opt(
            "SELECT oid::bigint FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| PgdrError::database(format!("inspecting the target: {}", db_message(&e))))?
        .map(|r| r.get::<_, i64>(0) as u32))
}
