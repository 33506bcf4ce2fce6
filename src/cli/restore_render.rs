//! Rendering of `pgdr restore`'s plan and report, as text for the operator and as JSON
//! (only `cli` renders; the command returns the plan and the report).

use crate::catalog::records::{RestoreMode, RestoreOutcome};
use crate::commands::restore::{describe_sessions, Plan, RestoreReport, TargetState};
use crate::progress::{human_bytes, human_duration};
use crate::restore::{EngineReport, RolesMode};

fn mode_word(m: RestoreMode) -> &'static str {
    match m {
        RestoreMode::Create => "create (the database does not exist)",
        RestoreMode::ReplaceEmpty => {
            "replace (the database exists without any user object: dropped and created again)"
        }
        RestoreMode::Clean => {
            "clean (restore beside it, prove, rename into place, then drop the original)"
        }
        RestoreMode::Swap => "swap (restore beside it, prove, then rename into place)",
        RestoreMode::IntoExisting => {
            "into the existing database (a managed target: it is never dropped or renamed)"
        }
        RestoreMode::Tables => "tables (selected tables into the live database)",
    }
}

/// The plan in operator words (never the password).
pub(super) fn plan_text(p: &Plan) -> String {
    let mut s = String::from("restore plan (nothing has been changed yet)\n");
    plan_facts(p, &mut s);
    if let Some(pp) = &p.point {
        super::restore_point::plan_lines(pp, &mut s);
    }
    s.push_str("  steps\n");
    let steps = plan_steps(p);
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!("    {}. {st}\n", i + 1));
    }
    if let Some(mp) = &p.managed {
        for d in &mp.decisions {
            s.push_str(&format!("  managed: {d}\n"));
        }
    }
    for r in &p.roles_preview {
        s.push_str(&format!("  roles: {r}\n"));
    }
    for n in &p.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    if p.is_source {
        s.push_str(&format!(
            "  CAUTION: '{}' is a configured source database: confirm by typing its name (or --confirm {})\n",
            p.name, p.name
        ));
    }
    s
}

/// The backup, the target and the mode, one line each.
fn plan_facts(p: &Plan, s: &mut String) {
    let m = &p.manifest;
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<12} {v}\n"));
    let verified = match &p.verification {
        None => "never verified".to_string(),
        Some(v) => format!(
            "last verification {} ({}, {})",
            serde_json::to_value(v.outcome)
                .ok()
                .and_then(|x| x.as_str().map(String::from))
                .unwrap_or_default(),
            serde_json::to_value(v.mode)
                .ok()
                .and_then(|x| x.as_str().map(String::from))
                .unwrap_or_default(),
            v.finished_at.format("%Y-%m-%d %H:%M")
        ),
    };
    line(
        "backup",
        format!("{} of '{}' ({verified})", m.id, m.database),
    );
    let age = (p.planned_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0;
    line(
        "snapshot",
        format!(
            "{} ({} ago): the data-loss point; changes made after it are not in this backup",
            m.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
            human_duration(age)
        ),
    );
    let dump = m.object("dump");
    line(
        "dump",
        format!(
            "{} (stored {}), from PostgreSQL {}, database owner {}",
            human_bytes(dump.map_or(0, |d| d.raw_bytes)),
            human_bytes(m.objects.iter().map(|o| o.stored_bytes).sum()),
            m.source
                .server_version
                .split_whitespace()
                .next()
                .unwrap_or_default(),
            m.source.database_owner
        ),
    );
    line(
        "target",
        format!("{} (PostgreSQL {})", p.target.describe(), p.server_version),
    );
    line(
        "target now",
        match &p.state {
            TargetState::Missing => format!("database '{}' does not exist", p.name),
            TargetState::Empty => {
                format!("database '{}' exists, without any user object", p.name)
            }
            TargetState::NonEmpty(n) => {
                format!(
                    "database '{}' exists with {}",
                    p.name,
                    TargetState::describe(n)
                )
            }
        },
    );
    if !p.sessions.is_empty() {
        line("sessions", describe_sessions(&p.sessions));
    }
    line("mode", mode_word(p.mode).to_string());
}

/// What the restore will do, in order.
fn plan_steps(p: &Plan) -> Vec<String> {
    let m = &p.manifest;
    let mut steps: Vec<String> = Vec::new();
    steps.push(match p.roles {
        RolesMode::Merge => "roles: create missing roles and memberships from the backup; existing roles get the backup's settings, comments and memberships, keep their attributes and passwords (--roles=merge)".into(),
        RolesMode::Keep => "roles: create missing roles and memberships from the backup; existing roles are kept as they are (--roles=keep)".into(),
        RolesMode::Overwrite => "roles: create missing roles; make every existing role equal to the backup's: attributes, password, settings, comments, memberships (--roles=overwrite)".into(),
    });
    let force = if p.terminate {
        "terminating other sessions (--terminate)"
    } else {
        "fails if other sessions are connected (add --terminate to end them)"
    };
    match p.mode {
        // A full restore's plan is never of mode Tables (`restore --table` has its own).
        RestoreMode::Create | RestoreMode::IntoExisting | RestoreMode::Tables => {}
        RestoreMode::ReplaceEmpty => steps.push(format!("DROP DATABASE {}: {force}", p.name)),
        RestoreMode::Swap | RestoreMode::Clean => {
            if let Some(l) = &p.leftover {
                steps.push(format!(
                    "DROP DATABASE {}: left by an interrupted pgdr restore (started {} on {}, pid {}); {force}",
                    l.name,
                    l.mark.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    l.mark.host,
                    l.mark.pid
                ))
            }
        }
    }
    match &p.managed {
        Some(mp) if mp.database_exists => {}
        Some(mp) => steps.push(format!(
            "create database {} owned by {}",
            p.restore_name, mp.role
        )),
        None => steps.push(format!(
            "create database {} owned by {}",
            p.restore_name, m.source.database_owner
        )),
    }
    steps.push(match &p.spool {
        None => "pg_restore, streamed from the repository (no local copy)".into(),
        Some((dir, need, free)) => format!(
            "fetch the dump into a spool file in {} (needs {}, {} free; removed afterwards), then pg_restore -j {}",
            dir.display(),
            human_bytes(*need),
            human_bytes(*free),
            p.jobs
        ),
    });
    steps.push(match crate::restore::dbprops::recorded(m) {
        Some(_) => "replay the database's settings, comment and ACL recorded in the backup".into(),
        None => "database-level properties (ALTER DATABASE ... SET, comment, ACL): the backup records none, so none are replayed".into(),
    });
    let (tables, rows) = p.table_count();
    if p.verify {
        steps.push(format!(
            "prove: recompute row counts and digests of {tables} tables ({rows} rows) and compare with the backup's fingerprint"
        ));
    } else {
        steps.push("no proof (--no-verify)".into());
    }
    if let (RestoreMode::Swap | RestoreMode::Clean, Some(prev)) = (p.mode, &p.previous_name) {
        let how = if p.terminate {
            "terminating other sessions first (--terminate)"
        } else {
            "needs both databases free of other sessions (add --terminate to end them)"
        };
        steps.push(format!(
            "only if proven: in one transaction rename {} → {prev} and {} → {}; {how}",
            p.name, p.restore_name, p.name
        ));
        if p.mode == RestoreMode::Clean {
            steps.push(format!(
                "then DROP DATABASE {prev} (the original, once the copy is in its place)"
            ));
        }
    }
    steps
}

pub(super) fn plan_json(p: &Plan) -> serde_json::Value {
    let m = &p.manifest;
    serde_json::json!({
        "backup_id": m.id,
        "database": m.database,
        "snapshot_time": m.snapshot.time,
        "snapshot_age_seconds": (p.planned_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0,
        "dump_bytes": m.object("dump").map_or(0, |d| d.raw_bytes),
        "target": p.target.describe(),
        "target_server_version": p.server_version,
        "target_state": match &p.state {
            TargetState::Missing => "missing".to_string(),
            TargetState::Empty => "empty".to_string(),
            TargetState::NonEmpty(n) => TargetState::describe(n),
        },
        "target_contents": match &p.state {
            TargetState::NonEmpty(n) => n.iter().map(|(k, c)| (k.clone(), *c)).collect(),
            _ => std::collections::BTreeMap::<String, i64>::new(),
        },
        "drops_leftover": p.leftover.as_ref().map(|l| l.name.clone()),
        "mode": p.mode,
        "restore_into": p.restore_name,
        "previous_kept_as": p.previous_name,
        "jobs": p.jobs,
        "roles": p.roles,
        "roles_plan": p.roles_preview,
        "verify": p.verify,
        "terminate": p.terminate,
        "requires_confirm_name": p.is_source,
        "notes": p.notes,
        "managed": p.managed.as_deref(),
        "point": p.point,
    })
}

pub(super) fn report_text(report: &RestoreReport) -> String {
    let r = &report.record;
    let mut s = String::new();
    let head = match r.outcome {
        RestoreOutcome::Restored => "restored and proven",
        RestoreOutcome::RestoredUnverified => "restored (not proven: --no-verify)",
        RestoreOutcome::Differences => "restored, but the copy DIFFERS from the backup",
        RestoreOutcome::Failed => "restore FAILED",
        RestoreOutcome::Interrupted => "restore INTERRUPTED",
    };
    s.push_str(&format!(
        "{head}: backup {} of '{}' into {}\n",
        r.backup_id, r.database, r.target
    ));
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {}", p.name, human_duration(p.seconds)))
        .collect();
    line("phases", phases.join(", "));
    line(
        "total (RTO)",
        if r.total_seconds < 60.0 {
            human_duration(r.total_seconds)
        } else {
            format!(
                "{} ({:.0}s)",
                human_duration(r.total_seconds),
                r.total_seconds
            )
        },
    );
    line(
        "snapshot (RPO)",
        format!(
            "{}: changes of the last {} (before this restore finished) are not in it",
            r.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
            human_duration(r.rpo_seconds)
        ),
    );
    match r.outcome {
        RestoreOutcome::Restored => line(
            "proof",
            format!(
                "fingerprint equal: {} tables, {} rows{}",
                report.tables,
                report.rows,
                crate::restore::roles::kept_suffix(&r.roles_kept)
            ),
        ),
        RestoreOutcome::Differences => {
            line("proof", format!("{} difference(s):", r.differences.len()));
            for d in &r.differences {
                s.push_str(&format!("    {d}\n"));
            }
        }
        _ => {}
    }
    if let Some(rp) = &r.replay {
        super::restore_point::report_lines(rp, &mut s);
    }
    if let Some(e) = &report.engine {
        render_engine(e, &mut s);
    }
    if let Some(prev) = &r.previous_kept_as {
        s.push_str(&format!(
            "  {:<16} kept as database {prev} (drop it when no longer needed)\n",
            "previous data"
        ));
    }
    managed_and_notes(report, &mut s);
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
    match &report.record_key {
        Ok(k) => line("record", k.clone()),
        Err(e) => line("record", format!("NOT stored: {e}")),
    }
    s
}

/// What the engine did besides the data: roles, memberships, database properties.
fn render_engine(e: &EngineReport, s: &mut String) {
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
    if !e.roles_created.is_empty() {
        line("roles created", e.roles_created.join(", "));
    }
    for k in &e.roles_kept {
        line("roles", k.clone());
    }
    if !e.memberships_added.is_empty() {
        line("memberships", e.memberships_added.join(", "));
    }
    for g in &e.globals_errors {
        line("roles warning", g.clone());
    }
    if !e.properties.is_empty() {
        line(
            "db properties",
            format!("{} statement(s) replayed", e.properties.len()),
        );
    }
    for p in &e.properties_skipped {
        line("db properties", p.clone());
    }
}

/// The managed target's decisions and skips, then the notes.
fn managed_and_notes(report: &RestoreReport, s: &mut String) {
    let mut line = |k: &str, v: &String| s.push_str(&format!("  {k:<16} {v}\n"));
    for n in &report.record.managed {
        line("managed", n);
    }
    for n in &report.notes {
        line("note", n);
    }
}

/// `pgdr list`: the marks beside the backups (points `restore --at-mark` can reach).
pub(super) fn marks(marks: &[crate::catalog::marks::Mark]) -> String {
    let mut out = String::new();
    if marks.is_empty() {
        return out;
    }
    out.push_str("\nmarks:\n");
    for m in marks {
        out.push_str(&format!(
            "  {}  {}  {}  {}\n",
            m.database,
            m.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
            m.lsn
                .map_or_else(|| "(no LSN: not a point)".to_string(), |l| l.to_string()),
            m.name
        ));
    }
    out
}
