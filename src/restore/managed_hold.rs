//! Trigger states a managed restore holds in the repository while it has the platform's
//! triggers disabled (no `session_replication_role`): written before the first
//! `DISABLE TRIGGER`, removed once every trigger is back. A run killed in between (SIGKILL,
//! a lost host) leaves the record, and the next `pgdr restore` to that target puts each
//! trigger back to its recorded state before it plans anything, and says so. The repository
//! holds it, not the target: the platform's schemas are not pgdr's to write into.

use chrono::Utc;
use tokio_postgres::Client;

use crate::catalog::format::held_triggers::{
    StoredHeldTrigger, StoredHeldTriggers, HELD_TRIGGERS_FORMAT,
};
use crate::catalog::Repository;
use crate::error::{PgdrError, Result};
use crate::sql::quote_ident as qi;

use super::db_message;
use super::managed::ManagedPlan;

/// Where a record is kept: the repository, the backup's database name there, and the target
/// (`host:port` and database).
#[derive(Clone, Copy)]
pub struct HeldAt<'a> {
    pub repo: &'a Repository,
    pub repo_db: &'a str,
    pub server: &'a str,
    pub database: &'a str,
}

/// `ALTER TABLE ... ENABLE|ENABLE REPLICA|ENABLE ALWAYS|DISABLE TRIGGER` back to `state`
/// (`pg_trigger.tgenabled`); `None` for a state PostgreSQL does not have.
pub fn set_state_sql(t: &StoredHeldTrigger) -> Option<String> {
    let how = match t.enabled.as_str() {
        "O" => "ENABLE",
        "R" => "ENABLE REPLICA",
        "A" => "ENABLE ALWAYS",
        "D" => "DISABLE",
        _ => return None,
    };
    Some(format!(
        "ALTER TABLE {}.{} {how} TRIGGER {}",
        qi(&t.schema),
        qi(&t.table),
        qi(&t.trigger)
    ))
}

/// The user triggers of the plan's tables to disable, with their states now.
pub async fn states(db: &Client, p: &ManagedPlan) -> Result<Vec<StoredHeldTrigger>> {
    let mut out = Vec::new();
    for (schema, table) in &p.disable_triggers {
        let rows = db
            .query(
                "SELECT t.tgname::text, t.tgenabled::text FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND NOT t.tgisinternal ORDER BY 1",
                &[schema, table],
            )
            .await
            .map_err(|e| {
                PgdrError::database(format!(
                    "reading the triggers of {schema}.{table}: {}",
                    db_message(&e)
                ))
            })?;
        out.extend(rows.iter().map(|r| StoredHeldTrigger {
            schema: schema.clone(),
            table: table.clone(),
            trigger: r.get(0),
            enabled: r.get(1),
        }));
    }
    Ok(out)
}

/// Record `triggers` (their states before) in the repository; nothing when there are none.
pub async fn hold(at: HeldAt<'_>, role: &str, triggers: &[StoredHeldTrigger]) -> Result<()> {
    if triggers.is_empty() {
        return Ok(());
    }
    let rec = StoredHeldTriggers {
        format_version: HELD_TRIGGERS_FORMAT,
        server: at.server.to_string(),
        database: at.database.to_string(),
        role: role.to_string(),
        disabled_at: Utc::now(),
        host: crate::catalog::records::hostname(),
        pid: std::process::id(),
        triggers: triggers.to_vec(),
    };
    at.repo.write_held_triggers(at.repo_db, &rec).await
}

/// Every trigger is back: the record goes.
pub async fn release(at: HeldAt<'_>) -> Result<()> {
    at.repo
        .delete_held_triggers(at.repo_db, at.server, at.database)
        .await
}

/// A record left by a run that did not finish: put each trigger back to its recorded state
/// (one whose table or trigger is gone is named), then remove the record. Returns what was
/// done, in operator words; an `ALTER` that fails stops with the record kept.
pub async fn put_back_leftover(at: HeldAt<'_>, db: &Client) -> Result<Vec<String>> {
    let Some(rec) = at
        .repo
        .held_triggers(at.repo_db, at.server, at.database)
        .await?
    else {
        return Ok(Vec::new());
    };
    let mut back = Vec::new();
    let mut gone = Vec::new();
    for t in &rec.triggers {
        let name = format!("{}.{} ({})", t.schema, t.table, t.trigger);
        let Some(sql) = set_state_sql(t) else {
            gone.push(format!("{name}: unknown state '{}'", t.enabled));
            continue;
        };
        let exists = db
            .query_opt(
                "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND t.tgname = $3",
                &[&t.schema, &t.table, &t.trigger],
            )
            .await
            .map_err(|e| {
                PgdrError::database(format!("reading trigger {name}: {}", db_message(&e)))
            })?;
        if exists.is_none() {
            gone.push(format!("{name}: no longer on the target"));
            continue;
        }
        db.batch_execute(&sql).await.map_err(|e| {
            PgdrError::database(format!(
                "putting back trigger {name} held disabled by an interrupted restore ({} on {}, pid {}, {}): {}",
                rec.role, rec.host, rec.pid, rec.disabled_at, db_message(&e)
            ))
            .hint(format!("run it by hand as a role with the table owner's privileges: {sql}"))
        })?;
        back.push(format!("{name} {}", t.enabled));
    }
    release(at).await?;
    let mut out = vec![format!(
        "triggers held disabled by an interrupted restore (by {} on {}, pid {}, at {}) put back as they were: {}",
        rec.role,
        rec.host,
        rec.pid,
        rec.disabled_at.format("%Y-%m-%d %H:%M:%S UTC"),
        back.join(", ")
    )];
    out.extend(
        gone.into_iter()
            .map(|g| format!("held trigger not put back: {g}")),
    );
    Ok(out)
}

/// A TEST HOOK, not a feature: with `PGDR_RESTORE_PAUSE=after-triggers-disabled` and
/// `PGDR_RESTORE_PAUSE_MARKER=<file>`, a managed restore stops dead once the platform's
/// triggers are disabled (and recorded), writes the marker and sleeps until killed: the e2e
/// test kills it there with SIGKILL to prove the next run puts them back. Children never see
/// it (they start from a cleared environment).
pub async fn test_pause() {
    if std::env::var("PGDR_RESTORE_PAUSE").as_deref() != Ok("after-triggers-disabled") {
        return;
    }
    let Some(marker) = std::env::var_os("PGDR_RESTORE_PAUSE_MARKER") else {
        return;
    };
    tracing::warn!("test hook PGDR_RESTORE_PAUSE is set: the restore stops dead");
    let _ = std::fs::write(marker, "after-triggers-disabled\n");
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
