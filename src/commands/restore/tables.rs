//! `pgdr restore --table`: the plan. Selected tables of a backup (with their data, indexes,
//! constraints, triggers, policies and grants) restored into a live database, nothing else
//! touched:
//!
//! - `--into SCHEMA` (default `restored_<backupid>`): pg_restore cannot rename a schema, so
//!   the selection is restored into the scratch cluster (with everything it refers to: roles,
//!   functions, the other tables empty), moved there with `ALTER TABLE ... SET SCHEMA` (indexes,
//!   constraints, triggers, policies and owned sequences move with a table), then
//!   `pg_dump -t 'SCHEMA.*' | pg_restore` into the target in one transaction. Rewriting
//!   pg_restore's SQL output instead would mean parsing SQL text: the catalog does the
//!   renaming exactly.
//! - `--replace`: `pg_restore --clean --if-exists --single-transaction` of the selected entries,
//!   streamed from the repository: the tables are dropped and restored in one transaction.
//!   Foreign keys of other tables into them are refused unless `--cascade`, which drops them
//!   and re-creates them from the backup in the same transaction.

use std::path::PathBuf;

use crate::catalog::{Catalog, Manifest};
use crate::codec::Identities;
use crate::config::{Database, Settings};
use crate::error::{PgdrError, Result};
use crate::restore::tables::{self, Selected};

use super::plan::{client_tools, is_source, open_backup, read_server, target_database};
use super::RestoreOptions;

/// `--table`, `--schema`, `--into`, `--replace`, `--cascade`.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// SCHEMA.NAME as given.
    pub tables: Vec<String>,
    pub schemas: Vec<String>,
    pub into: Option<String>,
    pub replace: bool,
    pub cascade: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "schema")]
pub enum TableMode {
    /// Beside the live tables, in this new schema.
    Into(String),
    /// The live tables replaced.
    Replace,
}

/// Everything decided before anything is changed.
pub struct TablePlan {
    pub manifest: Manifest,
    pub target: Database,
    pub name: String,
    pub mode: TableMode,
    pub selected: Selected,
    /// For `--replace --cascade`: the live foreign keys into the tables, dropped and
    /// re-created from the backup.
    pub cascaded: Vec<String>,
    pub is_source: bool,
    pub notes: Vec<String>,
    pub verify: bool,
    pub show_progress: bool,
    pub(super) bin_dir: PathBuf,
    pub(super) settings: Settings,
    pub(super) globals_sql: String,
    pub(super) ids: Identities,
    pub(super) catalog: Catalog,
    /// How the backup was accepted, for the restore record.
    pub(super) signature: crate::catalog::format::signature::BackupSignature,
}

/// "public.orders" → ("public", "orders"); a name without a schema is refused (the search
/// path of a restore is empty: a bare name would be a guess).
pub fn parse_table(s: &str) -> Result<(String, String)> {
    match s.split_once('.') {
        Some((sch, n)) if !sch.is_empty() && !n.is_empty() => Ok((sch.into(), n.into())),
        _ => Err(
            PgdrError::usage(format!("--table '{s}' is not SCHEMA.NAME"))
                .hint("name the schema too, e.g. --table public.orders"),
        ),
    }
}

/// `restored_<backupid>` as a lower-case identifier.
fn default_schema(id: &str) -> String {
    let id: String = id
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("restored_{id}").chars().take(63).collect()
}

/// Find and authenticate the backup, read its TOC, choose the entries, inspect the target.
/// Changes nothing anywhere.
pub async fn prepare_tables(
    settings: &Settings,
    opts: &RestoreOptions,
    t: &TableOptions,
) -> Result<TablePlan> {
    let wanted = t
        .tables
        .iter()
        .map(|s| parse_table(s))
        .collect::<Result<Vec<_>>>()?;
    let target = target_database(&opts.target_url)?;
    let name = target.conn.get_dbname().unwrap_or_default().to_string();
    // Authenticated (signature, identity) before the target is touched.
    let backup = open_backup(settings, opts, &name).await?;
    let m = backup.manifest;
    let client = crate::source::connect(&target).await?;
    let facts = read_server(&client, &target, &m).await?;
    let bin_dir = client_tools(settings, facts.major.max(m.source.major()))?;
    let toc = tables::read_toc(&backup.catalog, &m, backup.ids.clone()).await?;
    let into = !t.replace;
    let mut selected = tables::select(&toc, &wanted, &t.schemas, into)?;
    let mut notes = backup.notes;
    let mut cascaded = Vec::new();
    let mode = if t.replace {
        cascaded = incoming_live(&client, &selected, t.cascade).await?;
        if t.cascade {
            merge_in_order(&mut selected, &toc);
        }
        TableMode::Replace
    } else {
        let schema = t
            .into
            .clone()
            .unwrap_or_else(|| default_schema(m.id.as_str()));
        free_schema(&client, &schema, &name).await?;
        notes.push(format!(
            "schema {schema} is created, owned by {}; the tables' grants are the backup's",
            target.conn.get_user().unwrap_or("the connecting role")
        ));
        TableMode::Into(schema)
    };
    if !facts.superuser {
        notes.push("the target role is not a superuser: owners and grants may not restore".into());
    }
    Ok(TablePlan {
        is_source: is_source(settings, &target),
        manifest: m,
        target,
        name,
        mode,
        selected,
        cascaded,
        notes,
        verify: opts.verify,
        show_progress: opts.show_progress,
        bin_dir,
        settings: settings.clone(),
        globals_sql: backup.globals_sql,
        ids: backup.ids,
        catalog: backup.catalog,
        signature: backup.signature,
    })
}

/// `--cascade`: the backup's foreign keys into the tables join the list, in archive order.
fn merge_in_order(s: &mut Selected, toc: &[tables::TocItem]) {
    let ids: std::collections::HashSet<i32> =
        s.keep.iter().chain(&s.incoming_ids).copied().collect();
    s.keep = toc
        .iter()
        .map(|e| e.dump_id)
        .filter(|d| ids.contains(d))
        .collect();
    for fk in &s.incoming {
        s.objects
            .push(format!("FK CONSTRAINT {fk} (re-created, --cascade)"));
    }
}

/// Live foreign keys of other tables into the selected ones: refused without `--cascade`;
/// with it, each must be one the backup can re-create.
async fn incoming_live(
    client: &tokio_postgres::Client,
    s: &Selected,
    cascade: bool,
) -> Result<Vec<String>> {
    let names: Vec<String> = s
        .tables
        .iter()
        .map(|(sch, n)| {
            format!(
                "{}.{}",
                crate::sql::quote_ident(sch),
                crate::sql::quote_ident(n)
            )
        })
        .collect();
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname || ' ' || k.conname
               FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE k.contype = 'f'
                AND k.confrelid = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
                AND k.conrelid <> ALL (SELECT coalesce(to_regclass(x), 0) FROM unnest($1::text[]) x)
              ORDER BY 1",
            &[&names],
        )
        .await
        .map_err(|e| {
            PgdrError::database(format!(
                "reading foreign keys: {}",
                crate::restore::db_message(&e)
            ))
        })?;
    let live: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if live.is_empty() {
        return Ok(live);
    }
    if !cascade {
        return Err(PgdrError::usage(format!(
            "other tables have foreign keys into the tables to replace: {}",
            live.join(", ")
        ))
        .hint("add --cascade to drop them and re-create them from the backup in the same transaction, or restore beside the live tables with --into SCHEMA"));
    }
    let missing: Vec<&String> = live.iter().filter(|f| !s.incoming.contains(f)).collect();
    if !missing.is_empty() {
        return Err(PgdrError::usage(format!(
            "foreign keys into the tables to replace are not in the backup, so --cascade cannot re-create them: {}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .hint("drop them by hand first (and re-create them after), or restore with --into SCHEMA"));
    }
    Ok(live)
}

/// `--into`: the schema must not exist on the target (nothing live is written into).
async fn free_schema(client: &tokio_postgres::Client, schema: &str, db: &str) -> Result<()> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| {
            PgdrError::database(format!(
                "reading schemas: {}",
                crate::restore::db_message(&e)
            ))
        })?
        .is_some();
    if exists {
        return Err(PgdrError::usage(format!(
            "schema {schema} already exists in database '{db}'; pgdr restores the tables into a new schema only"
        ))
        .hint("name another with --into SCHEMA, or drop that schema first if it is a previous restore's"));
    }
    if schema.len() > 63 || schema.starts_with("pg_") {
        return Err(PgdrError::usage(format!(
            "--into '{schema}' is not a schema name pgdr can create"
        ))
        .hint("use at most 63 bytes, not starting with pg_"));
    }
    Ok(())
}
