//! What is at the target before a restore: whether the database holds anything at all, and
//! whether a `<name>_restoring` left there is one pgdr made (and may drop).

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::catalog::restoring::RestoringMark;
use crate::catalog::Catalog;
use crate::config::Database;
use crate::error::{PgdrError, Result};
use crate::restore::db_message;
use crate::sql::quote_ident as qi;

use super::plan::Plan;

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

/// Sessions connected to a database, grouped.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub database: String,
    pub application: String,
    pub user: String,
    pub client: String,
    pub count: i64,
}

pub fn describe_sessions(s: &[Sessions]) -> String {
    s.iter()
        .map(|x| {
            let n = if x.count > 1 {
                format!(" x{}", x.count)
            } else {
                String::new()
            };
            format!(
                "{} ({}@{}, on {}){n}",
                x.application, x.user, x.client, x.database
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn with_dbname(d: &Database, name: &str) -> Database {
    let mut x = d.clone();
    x.conn.dbname(name);
    x.name = name.to_string();
    x
}

/// host, port, dbname of a connection, for "is this the source database?".
pub(super) fn address(d: &Database) -> (String, u16, String) {
    let host = d
        .conn
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.to_lowercase(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let host = match host.as_str() {
        "127.0.0.1" | "::1" | "[::1]" => "localhost".to_string(),
        _ => host,
    };
    let port = d.conn.get_ports().first().copied().unwrap_or(5432);
    (host, port, d.conn.get_dbname().unwrap_or("").to_string())
}

/// Connect to the server's maintenance database: `postgres`, or `template1` if it is missing.
pub(super) async fn connect_maintenance(target: &Database) -> Result<(Database, Client)> {
    let m = with_dbname(target, "postgres");
    match crate::source::connect(&m).await {
        Ok(c) => Ok((m, c)),
        Err(e) if e.sqlstate() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let t = with_dbname(target, "template1");
            let c = crate::source::connect(&t).await?;
            Ok((t, c))
        }
        Err(e) => Err(e.context("target server")),
    }
}

pub(super) async fn sessions(client: &Client, names: &[&str]) -> Result<Vec<Sessions>> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "SELECT datname::text, COALESCE(NULLIF(application_name, ''), '(no name)'),
                    COALESCE(usename::text, '?'), COALESCE(host(client_addr), 'local'), count(*)
               FROM pg_stat_activity
              WHERE datname = ANY($1) AND pid <> pg_backend_pid()
              GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            &[&names],
        )
        .await
        .map_err(|e| PgdrError::database(format!("listing sessions: {}", db_message(&e))))?;
    Ok(rows
        .iter()
        .map(|r| Sessions {
            database: r.get(0),
            application: r.get(1),
            user: r.get(2),
            client: r.get(3),
            count: r.get(4),
        })
        .collect())
}

/// Wait until no other session is connected to `names` (a few seconds: pgdr's own sessions
/// take a moment to end); with `terminate`, end them with pg_terminate_backend.
pub(super) async fn clear_sessions(
    client: &Client,
    names: &[&str],
    terminate: bool,
    what: &str,
) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(if terminate { 15 } else { 3 });
    loop {
        let s = sessions(client, names).await?;
        if s.is_empty() {
            return Ok(());
        }
        if terminate {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
                    &[&names],
                )
                .await
                .map_err(|e| {
                    PgdrError::database(format!("terminating sessions: {}", db_message(&e)))
                })?;
        }
        if std::time::Instant::now() > deadline {
            let list = describe_sessions(&s);
            return Err(if terminate {
                PgdrError::database(format!(
                    "{what}: sessions did not end after pg_terminate_backend: {list}"
                ))
                .hint("something reconnects at once; stop those applications and run again")
            } else {
                PgdrError::usage(format!(
                    "{what} needs {} free of other sessions; connected: {list}",
                    names.join(" and ")
                ))
                .hint("stop those applications, or add --terminate to end their sessions (pg_terminate_backend)")
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn drop_database(client: &Client, name: &str, force: bool) -> Result<()> {
    let sql = if force {
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", qi(name))
    } else {
        format!("DROP DATABASE IF EXISTS {}", qi(name))
    };
    client.batch_execute(&sql).await.map_err(|e| {
        let err = PgdrError::database(format!("dropping database '{name}': {}", db_message(&e)));
        if e.code().map(|c| c.code()) == Some("55006") {
            err.hint("other sessions are connected; stop them, or add --terminate")
        } else {
            err
        }
    })
}
/// Rename the old database away and the proven copy into place, in one transaction.
pub(super) async fn swap(plan: &Plan, previous: &str) -> Result<()> {
    let mut client = crate::source::connect(&plan.maintenance).await?;
    let sql1 = format!(
        "ALTER DATABASE {} RENAME TO {}",
        qi(&plan.name),
        qi(previous)
    );
    let sql2 = format!(
        "ALTER DATABASE {} RENAME TO {}",
        qi(&plan.restore_name),
        qi(&plan.name)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        clear_sessions(
            &client,
            &[&plan.name, &plan.restore_name],
            plan.terminate,
            "the swap (ALTER DATABASE ... RENAME)",
        )
        .await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| PgdrError::database(format!("swap: {}", db_message(&e))))?;
        let r = match tx.batch_execute(&sql1).await {
            Ok(()) => match tx.batch_execute(&sql2).await {
                Ok(()) => tx.commit().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => return Ok(()),
            // A session slipped in between the check and the rename.
            Err(e) if e.code().map(|c| c.code()) == Some("55006") && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(PgdrError::database(format!(
                    "swap: renaming the databases: {}",
                    db_message(&e)
                ))
                .hint("nothing was renamed: the original database is in place"))
            }
        }
    }
}
