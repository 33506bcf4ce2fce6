//! `pgdr restore --table` on the command line: the plan (every object created, replaced or
//! skipped), the same confirmation as a full restore, the report.

use std::io::Write;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::commands::restore::{self as r, TableMode, TableOptions, TablePlan, TableReport};
use crate::config::Settings;
use crate::error::{exit, Kind, PgdrError};

use super::args::RestoreArgs;
use super::report_error;
use super::restore::confirm_restore;

pub(super) async fn run(
    settings: &Settings,
    opts: &r::RestoreOptions,
    a: &RestoreArgs,
    json: bool,
    cancel: CancellationToken,
) -> Result<i32, PgdrError> {
    let t = TableOptions {
        tables: a.table.clone(),
        schemas: a.table_schema.clone(),
        into: a.into.clone(),
        replace: a.replace,
        cascade: a.cascade,
    };
    let interrupted =
        || PgdrError::new(Kind::Interrupted, "interrupted before anything was changed");
    let plan = tokio::select! {
        p = r::prepare_tables(settings, opts, &t) => p?,
        _ = cancel.cancelled() => return Err(interrupted()),
    };
    if a.dry_run {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan_json(&plan)).expect("json")
            );
        } else {
            print!("{}", plan_text(&plan));
            println!("dry run: nothing was changed");
        }
        return Ok(exit::OK);
    }
    if json {
        eprint!("{}", plan_text(&plan));
    } else {
        print!("{}", plan_text(&plan));
        let _ = std::io::stdout().flush();
    }
    confirm_restore(plan.is_source, &plan.name, a.yes, a.confirm.as_deref())?;
    if cancel.is_cancelled() {
        return Err(interrupted());
    }
    let (report, error) = r::execute_tables(plan).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print!("{}", report_text(&report));
    }
    if let Some(e) = &error {
        report_error(e);
    }
    Ok(report.exit_code())
}

fn mode_line(p: &TablePlan) -> String {
    match &p.mode {
        TableMode::Into(s) => format!("into new schema {s} (the live tables are not touched)"),
        TableMode::Replace => "replace the live tables in one transaction".to_string(),
    }
}

pub(super) fn plan_text(p: &TablePlan) -> String {
    let mut s = format!(
        "restore tables of backup {} into database '{}' on {}\n  mode: {}\n",
        p.manifest.id,
        p.name,
        p.target.describe(),
        mode_line(p)
    );
    let verb = match p.mode {
        TableMode::Into(_) => "create",
        TableMode::Replace => "replace",
    };
    s.push_str(&format!("  tables ({}):\n", p.selected.tables.len()));
    for (sch, n) in &p.selected.tables {
        let name = format!("{sch}.{n}");
        let of = p.selected.partitions.iter().find(|(c, _)| *c == name);
        let of = of.map(|(_, parent)| format!(" (partition of {parent})"));
        s.push_str(&format!("    {verb} {name}{}\n", of.unwrap_or_default()));
    }
    s.push_str("  objects restored (archive order):\n");
    for o in &p.selected.objects {
        s.push_str(&format!("    {o}\n"));
    }
    for o in &p.selected.skipped {
        s.push_str(&format!("  skipped: {o}\n"));
    }
    match p.mode {
        TableMode::Into(_) => {
            for fk in &p.selected.incoming {
                s.push_str(&format!("  skipped: FK CONSTRAINT {fk}: a table that is not restored refers to the restored one\n"));
            }
        }
        TableMode::Replace => {
            for fk in &p.cascaded {
                s.push_str(&format!(
                    "  --cascade: foreign key {fk} is dropped and re-created from the backup\n"
                ));
            }
        }
    }
    for n in &p.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

pub(super) fn plan_json(p: &TablePlan) -> serde_json::Value {
    json!({
        "backup_id": p.manifest.id.to_string(),
        "database": p.name,
        "target": p.target.describe(),
        "mode": p.mode,
        "tables": p.selected.tables.iter().map(|(s, n)| format!("{s}.{n}")).collect::<Vec<_>>(),
        "partitions": p.selected.partitions.iter()
            .map(|(c, parent)| json!({"table": c, "partition_of": parent}))
            .collect::<Vec<_>>(),
        "objects": p.selected.objects,
        "skipped": p.selected.skipped,
        "incoming_foreign_keys": p.selected.incoming,
        "cascaded": p.cascaded,
        "notes": p.notes,
        "verify": p.verify,
    })
}

fn report_text(r: &TableReport) -> String {
    let mut s = String::new();
    if r.error.is_some() {
        s.push_str("table restore failed\n");
        s.push_str(&record_line(r));
        return s;
    }
    s.push_str(&format!(
        "restored {} table(s), {} row(s) into '{}' from backup {}\n",
        r.tables.len(),
        r.rows,
        r.database,
        r.backup_id
    ));
    for t in &r.tables {
        s.push_str(&format!("  {t}\n"));
    }
    match (r.verified, r.differences.is_empty()) {
        (false, _) => s.push_str("not verified (--no-verify)\n"),
        (true, true) => {
            s.push_str("proven: row counts and digests equal the backup's fingerprint\n")
        }
        (true, false) => {
            s.push_str("DIFFERENCES from the backup's fingerprint:\n");
            for d in &r.differences {
                s.push_str(&format!("  {d}\n"));
            }
        }
    }
    s.push_str(&record_line(r));
    s
}

/// Where the restore record went, or why it is missing (the restore stands either way).
fn record_line(r: &TableReport) -> String {
    match (&r.record, &r.record_error) {
        (Some(k), _) => format!("recorded: {k}\n"),
        (None, Some(e)) => format!("warning: the restore record could not be written: {e}\n"),
        (None, None) => String::new(),
    }
}

/// `show`: one line per restore of the backup, a table restore with its tables and where
/// they went.
pub(super) fn restore_lines(restores: &[(String, crate::catalog::RestoreRecord)]) -> String {
    use crate::catalog::format::restored_tables::StoredTableMode;
    use crate::catalog::records::RestoreOutcome as O;
    let mut s = String::new();
    for (_, r) in restores {
        let outcome = match r.outcome {
            O::Restored => "restored, proven",
            O::RestoredUnverified => "restored, not verified",
            O::Differences => "restored with DIFFERENCES",
            O::Failed => "FAILED",
            O::Interrupted => "interrupted",
        };
        let what = match &r.tables {
            Some(t) => {
                let how = match (t.mode, &t.schema) {
                    (StoredTableMode::Into, Some(sch)) => format!("into schema {sch}"),
                    _ => "replaced".to_string(),
                };
                format!("tables {} {how}", t.tables.join(", "))
            }
            None => "database".to_string(),
        };
        s.push_str(&format!(
            "{:<18} {} {what} on {}: {outcome}\n",
            "restore",
            r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.target
        ));
    }
    s
}
