//! Carrying out a [`ManagedPlan`]: the owners' memberships, `--clean` of the application
//! schemas, the filtered TOC list pg_restore reads (`--use-list`), and the proof narrowed to
//! what was restored.

use std::collections::BTreeSet;
use std::path::Path;

use tokio_postgres::Client;

use crate::error::{PgdrError, Result};
use crate::fingerprint::schema::SchemaFingerprint;
use crate::sql::quote_ident as qi;

use crate::catalog::format::held_triggers::StoredHeldTrigger;

use super::managed::ManagedPlan;
use super::offsets::ListEntry;
use super::{db_message, EngineReport};

/// What [`prepare`] changed for the restore only, taken back by [`finish`] whatever the
/// restore's outcome.
#[derive(Debug, Default)]
pub struct Undo {
    /// (schema, role): `GRANT CREATE` the backup does not have.
    create_grants: Vec<(String, String)>,
    /// Triggers disabled while rows load, with `tgenabled` before; [`finish`] leaves only
    /// those it could not put back.
    triggers: Vec<StoredHeldTrigger>,
}

impl Undo {
    /// Every disabled trigger is back (or none was disabled).
    pub fn triggers_back(&self) -> bool {
        self.triggers.is_empty()
    }
}

/// Before pg_restore: the connecting role joins the owners it may join, with `--clean` the
/// application schemas holding objects are dropped and re-created, owners get CREATE where
/// pg_restore gives them objects, and without `session_replication_role` the platform
/// tables' triggers are disabled. What must be taken back is noted in `undo` as it is done
/// (so a failure half-way is undone too). `held` are the triggers' states before, already
/// recorded in the repository ([`super::managed_hold`]). Returns whether the restore must
/// run with `--no-owner` (an owner it cannot act as).
pub async fn prepare(
    db: &Client,
    p: &ManagedPlan,
    held: &[StoredHeldTrigger],
    report: &mut EngineReport,
    undo: &mut Undo,
) -> Result<bool> {
    let mut no_owner = !p.foreign_owners.is_empty();
    for o in &p.grant_owners {
        let sql = format!("GRANT {} TO {}", qi(o), qi(&p.role));
        if let Err(e) = db.batch_execute(&sql).await {
            report.managed.push(format!(
                "owner {o}: could not grant membership ({}); its objects are owned by {}",
                db_message(&e),
                p.role
            ));
            no_owner = true;
        } else {
            report
                .managed
                .push(format!("owner {o}: membership granted to {}", p.role));
        }
    }
    if p.clean {
        clean_app_schemas(db, p, report).await?;
    }
    for (s, o, kept) in &p.create_grants {
        let sql = format!("GRANT CREATE ON SCHEMA {} TO {}", qi(s), qi(o));
        db.batch_execute(&sql)
            .await
            .map_err(|e| PgdrError::database(format!("{sql}: {}", db_message(&e))))?;
        if !kept {
            undo.create_grants.push((s.clone(), o.clone()));
        }
    }
    disable_triggers(db, p, held, report, undo).await?;
    Ok(no_owner)
}

/// `ALTER TABLE ... DISABLE TRIGGER USER` on each planned platform table, as its owner (the
/// plan checked the connecting role has its privileges); `held` has each trigger's state.
async fn disable_triggers(
    db: &Client,
    p: &ManagedPlan,
    held: &[StoredHeldTrigger],
    report: &mut EngineReport,
    undo: &mut Undo,
) -> Result<()> {
    for (schema, table) in &p.disable_triggers {
        let name = format!("{schema}.{table}");
        let sql = format!(
            "ALTER TABLE {}.{} DISABLE TRIGGER USER",
            qi(schema),
            qi(table)
        );
        db.batch_execute(&sql).await.map_err(|e| {
            PgdrError::database(format!(
                "disabling the triggers of {name}: {}",
                db_message(&e)
            ))
        })?;
        let these: Vec<&StoredHeldTrigger> = held
            .iter()
            .filter(|t| &t.schema == schema && &t.table == table)
            .collect();
        let names: Vec<&str> = these.iter().map(|t| t.trigger.as_str()).collect();
        report.managed.push(format!(
            "triggers of {name} disabled while its rows are restored: {}",
            names.join(", ")
        ));
        undo.triggers.extend(these.into_iter().cloned());
    }
    Ok(())
}

/// `--clean` on a managed target: drop and re-create each application schema that holds
/// objects (never a platform schema). `public` is re-created as PostgreSQL makes it.
async fn clean_app_schemas(db: &Client, p: &ManagedPlan, report: &mut EngineReport) -> Result<()> {
    for s in &p.app_schemas {
        let exists = db
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[s])
            .await
            .map_err(|e| PgdrError::database(format!("--clean: {}", db_message(&e))))?
            .is_some();
        if !exists || p.is_platform(s) {
            continue;
        }
        let mut sql = format!("DROP SCHEMA {} CASCADE;", qi(s));
        if s == "public" {
            sql.push_str(
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner; \
                 GRANT USAGE ON SCHEMA public TO PUBLIC; \
                 COMMENT ON SCHEMA public IS 'standard public schema';",
            );
        }
        db.batch_execute(&sql).await.map_err(|e| {
            PgdrError::database(format!(
                "--clean: dropping application schema {s}: {}",
                db_message(&e)
            ))
        })?;
        report
            .managed
            .push(format!("--clean: application schema {s} dropped"));
    }
    Ok(())
}

/// What the target already has in platform schemas, by pg_dump's TOC tag
/// (`table trigger`, `table policy`), so the backup's own additions are restored and the
/// platform's are not made twice.
async fn platform_tags(db: &Client, p: &ManagedPlan) -> Result<BTreeSet<(String, String)>> {
    let schemas: Vec<String> = p.platform.iter().map(|s| s.name.clone()).collect();
    let rows = db
        .query(
            "SELECT n.nspname::text, c.relname || ' ' || t.tgname
               FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
             UNION ALL
             SELECT schemaname::text, tablename || ' ' || policyname
               FROM pg_policies WHERE schemaname = ANY($1)",
            &[&schemas],
        )
        .await
        .map_err(|e| {
            PgdrError::database(format!("reading platform triggers: {}", db_message(&e)))
        })?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Whether one TOC entry is restored on the managed target, or why not.
fn keep(e: &ListEntry, p: &ManagedPlan, have: &BTreeSet<(String, String)>) -> Option<String> {
    let schema_tag = e.tag.strip_prefix("SCHEMA ");
    match e.desc.as_str() {
        "EVENT TRIGGER" => return Some(format!("event trigger {}: superuser-only", e.tag)),
        "SUBSCRIPTION" => return Some(format!("subscription {}: superuser-only", e.tag)),
        "EXTENSION" if p.missing_extensions.contains(&e.tag) => {
            return Some(format!("extension {}: not offered by the target", e.tag))
        }
        "SCHEMA" if p.is_platform(&e.tag) => return Some(String::new()),
        // Comments, grants and labels of a platform schema or an extension are the
        // platform's (or need the extension's owner).
        "COMMENT" | "ACL" | "SECURITY LABEL"
            if schema_tag.is_some_and(|s| p.is_platform(s))
                || e.tag.starts_with("EXTENSION ")
                || e.tag.starts_with("EVENT TRIGGER ") =>
        {
            return Some(String::new())
        }
        _ => {}
    }
    if !p.is_platform(&e.namespace) {
        return None;
    }
    match e.desc.as_str() {
        "TABLE DATA" | "SEQUENCE SET" => None,
        "TRIGGER" | "POLICY" if !have.contains(&(e.namespace.clone(), e.tag.clone())) => None,
        _ => Some(String::new()),
    }
}

/// Write the `--use-list` file for pg_restore next to the spool file; returns the named
/// skips (definitions of platform schemas are skipped silently: the plan names the schema).
pub async fn write_list(
    db: &Client,
    p: &ManagedPlan,
    archive: &Path,
    list: &Path,
) -> Result<Vec<String>> {
    let have = platform_tags(db, p).await?;
    let path = archive.to_path_buf();
    let entries = tokio::task::spawn_blocking(move || super::offsets::list(&path))
        .await
        .map_err(|e| PgdrError::internal(format!("reading the archive's TOC: {e}")))?
        .map_err(|e| PgdrError::corrupt(format!("reading the archive's TOC: {e}")))?;
    let mut text = String::from("; pgdr: the entries restored onto a managed target\n");
    let mut skipped = Vec::new();
    for e in &entries {
        match keep(e, p, &have) {
            None => text.push_str(&format!("{};\n", e.dump_id)),
            Some(why) if !why.is_empty() => skipped.push(format!("skipped {why}")),
            Some(_) => {}
        }
    }
    std::fs::write(list, text)
        .map_err(|e| PgdrError::usage(format!("writing {}: {e}", list.display())))?;
    Ok(skipped)
}

/// The schema fingerprint narrowed to what a managed restore restores: the application
/// schemas' objects; platform schemas and what the target has beyond the backup (its own
/// schemas, extensions, event triggers) are left out. `expected` is `None` when narrowing
/// the expected side itself.
pub fn narrow(fp: &mut SchemaFingerprint, p: &ManagedPlan, expected: Option<&SchemaFingerprint>) {
    let app = |key: &str| {
        p.app_schemas
            .iter()
            .any(|s| key == s || key.starts_with(&format!("{s}.")))
    };
    for (section, objs) in fp.sections.iter_mut() {
        match section.as_str() {
            "roles" | "memberships" | "database" => {}
            "extensions" => objs.retain(|k, _| !p.missing_extensions.contains(k)),
            "event_triggers" | "publications" => objs.clear(),
            _ => objs.retain(|k, _| app(k)),
        }
        if let Some(exp) = expected.and_then(|x| x.sections.get(section)) {
            if matches!(section.as_str(), "extensions") {
                objs.retain(|k, _| exp.contains_key(k));
            }
        }
    }
}

/// After pg_restore, whether it succeeded or not: the platform tables' triggers back to the
/// state they had, the temporary CREATE grants taken back. Every step is tried; the first
/// failure is returned (named), after all were tried.
pub async fn finish(db: &Client, undo: &mut Undo, report: &mut EngineReport) -> Result<()> {
    let mut first: Option<PgdrError> = None;
    let mut restored: Vec<String> = Vec::new();
    let mut left = Vec::new();
    for t in std::mem::take(&mut undo.triggers) {
        // Disabled before: `DISABLE TRIGGER USER` left it so.
        if t.enabled == "D" {
            continue;
        }
        let Some(sql) = super::managed_hold::set_state_sql(&t) else {
            continue;
        };
        match db.batch_execute(&sql).await {
            Ok(()) => restored.push(format!("{}.{} ({})", t.schema, t.table, t.trigger)),
            Err(e) => {
                let e = PgdrError::database(format!(
                    "putting back trigger {} of {}.{}: {}",
                    t.trigger,
                    t.schema,
                    t.table,
                    db_message(&e)
                ))
                .hint(format!("run it by hand: {sql}"));
                first.get_or_insert(e);
                left.push(t);
            }
        }
    }
    undo.triggers = left;
    if !restored.is_empty() {
        report.managed.push(format!(
            "triggers put back as they were: {}",
            restored.join(", ")
        ));
    }
    for (s, o) in &undo.create_grants {
        let sql = format!("REVOKE CREATE ON SCHEMA {} FROM {}", qi(s), qi(o));
        if let Err(e) = db.batch_execute(&sql).await {
            let e = PgdrError::database(format!("{sql}: {}", db_message(&e)));
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
