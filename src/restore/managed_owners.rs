//! Owners after a `--no-owner` restore on a managed target: each object whose backup owner
//! the connecting role can act as (SET ROLE) is given back to that owner; only the owners it
//! can never become (the plan's `foreign_owners`) stay replaced by it.
//!
//! Why `ALTER ... OWNER TO` after one `--no-owner` pg_restore rather than a second pg_restore
//! pass with owners: `--no-owner` is all or nothing per run, and splitting the TOC into two
//! runs breaks pg_restore's dependency order (an app role's view over a superuser's table).
//! `ALTER ... OWNER TO` also rewrites the object's ACL from the connecting role to the new
//! owner, exactly as the backup's grants were made by their owner.
//!
//! The objects and their backup owners come from the backup's schema fingerprint (the same
//! keys the proof compares), their SQL names from the target's catalog: schemas, tables,
//! views, materialized views, sequences not owned by a column (those follow their table),
//! functions and procedures, types and domains, extended statistics.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use crate::catalog::Manifest;
use crate::error::{PgdrError, Result};
use crate::sql::quote_ident as qi;

use super::managed::ManagedPlan;
use super::{db_message, EngineReport};

/// (section, key, current owner, `ALTER` object words, schema or `None` for a schema itself).
const OBJECTS: &str = r#"
SELECT 'schemas', n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text,
       'SCHEMA ' || pg_catalog.quote_ident(n.nspname), NULL::text
  FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1)
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'views' WHEN 'm' THEN 'materialized_views'
                      WHEN 'S' THEN 'sequences' ELSE 'tables' END,
       n.nspname || '.' || c.relname, pg_catalog.pg_get_userbyid(c.relowner)::text,
       CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW '
                      WHEN 'S' THEN 'SEQUENCE ' WHEN 'f' THEN 'FOREIGN TABLE ' ELSE 'TABLE ' END
         || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
       n.nspname::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
   AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'functions',
       n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       pg_catalog.pg_get_userbyid(p.proowner)::text,
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END
         || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname)
         || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       n.nspname::text
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY($1) AND p.prokind <> 'a'
UNION ALL
SELECT 'types', n.nspname || '.' || t.typname, pg_catalog.pg_get_userbyid(t.typowner)::text,
       CASE t.typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END
         || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname),
       n.nspname::text
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = ANY($1)
   AND (t.typrelid = 0 OR (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid = t.typrelid) = 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
UNION ALL
SELECT 'statistics', n.nspname || '.' || s.stxname, pg_catalog.pg_get_userbyid(s.stxowner)::text,
       'STATISTICS ' || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.stxname),
       n.nspname::text
  FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
 WHERE n.nspname = ANY($1)
"#;

/// One object to give back: its `ALTER` words, the owner, and where that owner needs CREATE.
struct Reown {
    what: String,
    key: String,
    owner: String,
    schema: Option<String>,
}

/// The backup's owners by (section, key), from its schema fingerprint.
fn backup_owners(m: &Manifest) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let Some(s) = m.fingerprint.as_ref().and_then(|f| f.schema.as_ref()) else {
        return out;
    };
    for (sec, objs) in &s.sections {
        for (k, v) in objs {
            if let Some(o) = v.get("owner").and_then(|o| o.as_str()) {
                out.insert((sec.clone(), k.clone()), o.to_string());
            }
        }
    }
    out
}

fn err(what: &str, e: &tokio_postgres::Error) -> PgdrError {
    PgdrError::database(format!("{what}: {}", db_message(e)))
}

/// After a `--no-owner` pg_restore: give every object of the application schemas whose
/// backup owner the connecting role can act as back to that owner. An owner it cannot act as
/// (beyond the plan's superusers: a membership grant that failed) is named in the report and
/// left to the proof, which then reports its objects' owner.
pub async fn give_back(
    db: &Client,
    m: &Manifest,
    p: &ManagedPlan,
    report: &mut EngineReport,
) -> Result<()> {
    let backup = backup_owners(m);
    let rows = db
        .query(OBJECTS, &[&p.app_schemas])
        .await
        .map_err(|e| err("reading the restored objects' owners", &e))?;
    let mut todo = Vec::new();
    let mut unreachable = BTreeSet::new();
    let mut reachable = BTreeMap::<String, bool>::new();
    for r in &rows {
        let (section, key, now): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let Some(owner) = backup.get(&(section, key.clone())) else {
            continue;
        };
        if *owner == now || p.foreign_owners.contains(owner) || owner == "pg_database_owner" {
            continue;
        }
        let can = match reachable.get(owner) {
            Some(c) => *c,
            None => {
                let c = can_become(db, owner).await?;
                reachable.insert(owner.clone(), c);
                c
            }
        };
        if !can {
            unreachable.insert(owner.clone());
            continue;
        }
        todo.push(Reown {
            what: r.get(3),
            key,
            owner: owner.clone(),
            schema: r.get(4),
        });
    }
    for o in &unreachable {
        report.managed.push(format!(
            "owner {o}: {} cannot act as it; its objects are owned by {}",
            p.role, p.role
        ));
    }
    if todo.is_empty() {
        return Ok(());
    }
    // Schemas first: an owner that gets its schema back needs no temporary CREATE on it.
    let (schemas, rest): (Vec<Reown>, Vec<Reown>) =
        todo.into_iter().partition(|o| o.schema.is_none());
    let mut given = BTreeMap::<String, usize>::new();
    let first = alter_all(db, &schemas, &mut given, report).await;
    let second = alter_all(db, &rest, &mut given, report).await;
    for (o, n) in given {
        report.managed.push(format!(
            "owner {o}: {n} object(s) given back to it after the --no-owner restore (ALTER ... OWNER TO)"
        ));
    }
    first.and(second)
}

/// `ALTER ... OWNER TO` for each of `todo`, with the CREATE it needs granted for the step
/// only; every one is tried, the first failure returned (each is in the report).
async fn alter_all(
    db: &Client,
    todo: &[Reown],
    given: &mut BTreeMap<String, usize>,
    report: &mut EngineReport,
) -> Result<()> {
    let granted = grant_create(db, todo).await?;
    let mut first = None;
    for o in todo {
        let sql = format!("ALTER {} OWNER TO {}", o.what, qi(&o.owner));
        match db.batch_execute(&sql).await {
            Ok(()) => *given.entry(o.owner.clone()).or_default() += 1,
            Err(e) => {
                let line = format!(
                    "owner of {} not given back to {}: {}",
                    o.key,
                    o.owner,
                    db_message(&e)
                );
                report.managed.push(line.clone());
                first.get_or_insert(
                    PgdrError::database(line).hint(format!("run it by hand: {sql}")),
                );
            }
        }
    }
    let revoked = revoke_create(db, &granted).await;
    match (first, revoked) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(()),
    }
}

/// Whether the connecting role may SET ROLE to `owner` (what `ALTER ... OWNER TO` asks).
async fn can_become(db: &Client, owner: &str) -> Result<bool> {
    let r = db
        .query_opt(
            "SELECT pg_catalog.pg_has_role(current_user, oid, 'MEMBER') FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&owner],
        )
        .await
        .map_err(|e| err("reading the owners", &e))?;
    Ok(r.is_some_and(|r| r.get(0)))
}

/// `ALTER ... OWNER TO` by a non-superuser asks that the new owner may CREATE in the object's
/// schema (in the database, for a schema): granted for the step only where it lacks it.
/// Returns the grants made, as their `REVOKE`.
async fn grant_create(db: &Client, todo: &[Reown]) -> Result<Vec<String>> {
    let needs: BTreeSet<(Option<&str>, &str)> = todo
        .iter()
        .map(|o| (o.schema.as_deref(), o.owner.as_str()))
        .collect();
    let mut revokes = Vec::new();
    for (schema, owner) in needs {
        let (ok, on) = match schema {
            Some(s) => (
                db.query_one(
                    "SELECT pg_catalog.has_schema_privilege($1::text, $2::text, 'CREATE')",
                    &[&owner, &s],
                )
                .await,
                format!("SCHEMA {}", qi(s)),
            ),
            None => (
                db.query_one(
                    "SELECT pg_catalog.has_database_privilege($1::text, current_database(), 'CREATE')",
                    &[&owner],
                )
                .await,
                format!("DATABASE {}", current_db(db).await?),
            ),
        };
        let ok: bool = ok.map_err(|e| err("reading CREATE privileges", &e))?.get(0);
        if ok {
            continue;
        }
        let sql = format!("GRANT CREATE ON {on} TO {}", qi(owner));
        if db.batch_execute(&sql).await.is_ok() {
            revokes.push(format!("REVOKE CREATE ON {on} FROM {}", qi(owner)));
        }
    }
    Ok(revokes)
}

async fn current_db(db: &Client) -> Result<String> {
    let name: String = db
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| err("reading the database name", &e))?
        .get(0);
    Ok(qi(&name))
}

/// Take back what [`grant_create`] granted; every one is tried, the first failure returned.
async fn revoke_create(db: &Client, revokes: &[String]) -> Result<()> {
    let mut first = None;
    for sql in revokes {
        if let Err(e) = db.batch_execute(sql).await {
            first.get_or_insert(err(sql, &e).hint(format!("run it by hand: {sql}")));
        }
    }
    first.map_or(Ok(()), Err)
}
