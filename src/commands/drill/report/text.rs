//! One drill and the history table, as the terminal shows them.

use std::fmt::Write as _;

use super::{check_got, history_row, met, opt_dur, outcome_word};
use crate::catalog::records::DrillRecord;
use crate::progress::human_duration;

/// One drill, as `pgdr drill` prints it.
pub fn render_drill(r: &DrillRecord, key: &str) -> String {
    let mut s = String::new();
    let name = r
        .drill
        .as_ref()
        .map_or(String::new(), |n| format!(" '{n}'"));
    let _ = writeln!(
        s,
        "drill{name} of '{}': {}",
        r.database,
        outcome_word(r.outcome).to_uppercase()
    );
    let mut lines = setup_lines(r);
    lines.extend(measure_lines(r));
    lines.extend(finding_lines(r, key));
    for (k, v) in lines {
        let _ = writeln!(s, "  {k:<13} {v}");
    }
    s
}

/// What was restored where, and how long each phase took.
fn setup_lines(r: &DrillRecord) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match &r.backup {
        Some(b) => out.push((
            "backup",
            format!(
                "{} ({}; snapshot {}, PostgreSQL {})",
                b.id,
                r.selection,
                b.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
                b.server_version
            ),
        )),
        None => out.push(("backup", "none".into())),
    }
    if let Some(rp) = &r.replay {
        out.push(("replayed", super::replay_summary(rp)));
    }
    if let Some(sc) = &r.scratch {
        out.push((
            "restored into",
            match &r.scratch_server_version {
                Some(v) if !sc.contains(v.split_whitespace().next().unwrap_or("")) => {
                    format!("{sc} (PostgreSQL {v})")
                }
                _ => sc.clone(),
            },
        ));
    }
    out.push((
        "phases",
        r.phases
            .iter()
            .map(|p| format!("{} {:.2}s", p.name, p.seconds))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    out
}

/// RTO, RPO and the worst RPO against their targets.
fn measure_lines(r: &DrillRecord) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (
            "RTO",
            format!(
                "{:<10} target {:<9} {}",
                opt_dur(r.rto_seconds),
                human_duration(r.targets.rto_seconds),
                met(r.targets.rto_met)
            ),
        ),
        (
            "RPO",
            format!(
                "{:<10} target {:<9} {}",
                super::rpo_text(r),
                human_duration(r.targets.rpo_seconds),
                met(r.targets.rpo_met)
            ),
        ),
    ];
    match &r.worst_rpo {
        Some(w) => out.push((
            "worst RPO",
            format!(
                "{} over the last {} days (backup {} to {})",
                human_duration(w.seconds),
                w.window_days,
                w.from_backup,
                w.to_backup
                    .as_ref()
                    .map_or("the drill".to_string(), |b| b.to_string())
            ),
        )),
        None => out.push(("worst RPO", "unknown: no restorable backup".into())),
    }
    out
}

/// Checks, differences, failures and where the record was stored.
fn finding_lines(r: &DrillRecord, key: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for c in &r.checks {
        let got = check_got(c).map_or(String::new(), |g| format!(" ({g})"));
        match &c.message {
            None => out.push(("check", format!("ok    {}: {}{got}", c.name, c.expect))),
            Some(m) => out.push(("check", format!("FAIL  {}: {m}", c.name))),
        }
    }
    for d in &r.differences {
        out.push(("difference", d.clone()));
    }
    for f in &r.failures {
        out.push(("failure", f.clone()));
    }
    if !key.is_empty() {
        out.push(("recorded", key.to_string()));
    }
    out
}

/// The history table, newest first (as given).
pub fn render_history(records: &[DrillRecord]) -> String {
    if records.is_empty() {
        return "no drills recorded\n".into();
    }
    let mut s = format!(
        "{:<20} {:<12} {:<10} {:<22} {:>9} {:>9} {:>9}  {:<13} {}\n",
        "STARTED (UTC)",
        "DATABASE",
        "DRILL",
        "BACKUP",
        "RTO",
        "RPO",
        "WORST RPO",
        "RESULT",
        "FAILED CHECKS"
    );
    for h in records.iter().map(history_row) {
        let _ = writeln!(
            s,
            "{:<20} {:<12} {:<10} {:<22} {:>9} {:>9} {:>9}  {:<13} {}",
            h.started,
            h.database,
            h.drill,
            h.backup,
            h.rto,
            h.rpo,
            h.worst_rpo,
            outcome_word(h.outcome),
            h.failed_checks
        );
    }
    s
}
