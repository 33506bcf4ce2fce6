//! Rendering drills: one drill as text, the history table, and the report (one self-contained
//! HTML file with SVG charts drawn by plotters, or Markdown, or JSON). This file holds what
//! every format shares (the row model and the sentences); each format lives in its own file.

mod chart;
mod html;
mod markdown;
mod text;

use chrono::{DateTime, Utc};

use crate::catalog::records::{CheckResult, DrillRecord, Outcome, WorstRpo};
use crate::drill::rpo::ScheduleVerdict;
use crate::progress::human_duration;

pub use text::{render_drill, render_history};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Md,
    Json,
}

/// Everything the report says about one database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    pub database: String,
    /// Whether the backup schedule can meet the RPO target.
    pub schedule: ScheduleVerdict,
    /// The worst RPO of the last 30 days, as of the report.
    pub worst_rpo_now: Option<WorstRpo>,
    /// Backups in the repository.
    pub backups: usize,
    /// Oldest first.
    pub drills: Vec<DrillRecord>,
}

/// What each phase of a drill covers, for readers of the report.
pub fn phase_meaning(name: &str) -> &'static str {
    match name {
        "select" => "list the repository, choose the backup",
        "scratch" => "start the scratch cluster (or reach the scratch server)",
        "globals" => "fetch and decrypt the globals; create the roles",
        "create" => "CREATE DATABASE with the original owner",
        "restore" => "fetch, decrypt, decompress and pg_restore: data, then indexes, constraints, triggers (streamed together)",
        "compare" => "recompute the fingerprint on the restored copy and compare",
        "checks" => "the drill's smoke checks",
        "replay" => "replay the stored changes onto the anchor up to the drilled point; sequences, views, tables measured",
        "teardown" => "remove the scratch database (after the RTO)",
        "failed" => "the step that failed",
        _ => "",
    }
}

/// A drill of a point: the point, the last applied commit and its distance to the point,
/// what was replayed.
pub fn replay_summary(r: &crate::catalog::format::replayed::StoredReplayed) -> String {
    let last = r.last_commit.as_ref().map_or_else(
        || "no commit after the anchor's cut".to_string(),
        |c| {
            format!(
                "last applied commit {} at {}",
                c.lsn,
                c.time.format("%Y-%m-%d %H:%M:%S%.3f UTC")
            )
        },
    );
    let distance = match (r.distance_seconds, r.distance_bytes) {
        (Some(s), _) => format!("{s:.3}s before the point"),
        (_, Some(b)) => format!("{b} WAL bytes before the point"),
        _ => "the newest stored change".into(),
    };
    format!(
        "point {}: {last}, {distance}; {} transaction(s), {} row(s) replayed in {:.2}s; {} table(s) measured",
        r.point,
        r.transactions,
        r.rows,
        r.replay_seconds,
        r.tables.len()
    )
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Error => "could not run",
    }
}

fn opt_dur(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), human_duration)
}

/// The RPO, marked when it is the capture's (data at risk now) rather than the backup's age.
fn rpo_text(r: &DrillRecord) -> String {
    match (r.rpo_seconds, r.rpo_source.as_deref()) {
        (Some(s), Some("capture")) => format!("{} (capture)", human_duration(s)),
        (s, _) => opt_dur(s),
    }
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

/// What a check saw, as far as its expectation cares: the value for `equals`, else the
/// row count (nothing for a passed `no rows`).
fn check_got(c: &CheckResult) -> Option<String> {
    match (c.rows, &c.value) {
        (Some(1), Some(v)) if c.expect.trim_start().starts_with("equals") => Some(format!("'{v}'")),
        (Some(0), _) if c.passed => None,
        (Some(1), _) => Some("1 row".into()),
        (Some(n), _) => Some(format!("{n} rows")),
        _ => None,
    }
}

fn failed_checks(r: &DrillRecord) -> usize {
    r.checks.iter().filter(|c| !c.passed).count()
}

/// One drill as every history table shows it (terminal, Markdown, HTML): the cells are made
/// once here, each format only lays them out.
struct HistoryRow {
    started: String,
    database: String,
    drill: String,
    backup: String,
    rto: String,
    rpo: String,
    worst_rpo: String,
    /// "15m / 5m"
    targets: String,
    outcome: Outcome,
    failed_checks: usize,
    /// The failures, one line.
    why: String,
}

fn history_row(r: &DrillRecord) -> HistoryRow {
    HistoryRow {
        started: r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        database: r.database.clone(),
        drill: r.drill.clone().unwrap_or_else(|| "-".into()),
        backup: r.backup.as_ref().map_or("-".into(), |b| b.id.to_string()),
        rto: opt_dur(r.rto_seconds),
        rpo: rpo_text(r),
        worst_rpo: opt_dur(r.worst_rpo.as_ref().map(|w| w.seconds)),
        targets: format!(
            "{} / {}",
            human_duration(r.targets.rto_seconds),
            human_duration(r.targets.rpo_seconds)
        ),
        outcome: r.outcome,
        failed_checks: failed_checks(r),
        why: r.failures.join("; "),
    }
}

pub fn render(sections: &[Section], format: Format, now: DateTime<Utc>) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "generated_at": now,
                "pgdr_version": env!("CARGO_PKG_VERSION"),
                "databases": sections.iter().map(|s| serde_json::json!({
                    "database": s.database,
                    "backups": s.backups,
                    "schedule": s.schedule,
                    "worst_rpo_now": s.worst_rpo_now,
                    "latest": s.drills.last(),
                    "history": s.drills.iter().rev().collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&v).expect("json") + "\n"
        }
        Format::Md => markdown::markdown(sections, now),
        Format::Html => html::html(sections, now),
    }
}

/// (name, seconds, counts toward the RTO)
fn all_phases(r: &DrillRecord) -> Vec<(String, f64, bool)> {
    let mut in_rto = true;
    r.phases
        .iter()
        .map(|p| {
            if p.name == "teardown" {
                in_rto = false;
            }
            (p.name.clone(), p.seconds, in_rto)
        })
        .collect()
}

fn rto_phases(r: &DrillRecord) -> Vec<(String, f64)> {
    all_phases(r)
        .into_iter()
        .filter(|p| p.2)
        .map(|p| (p.0, p.1))
        .collect()
}

/// The worst RPO of the last 30 days as of the report, with the backups it rests on.
fn worst_now_sentence(sec: &Section) -> String {
    match &sec.worst_rpo_now {
        None => format!(
            "Worst RPO over the last {} days, as of this report: unknown, no backup of the {} in the repository is restorable (all failed verification, or there are none): a failure now would lose everything.",
            crate::drill::WORST_RPO_WINDOW_DAYS,
            sec.backups
        ),
        Some(w) => format!(
            "Worst RPO over the last {} days, as of this report: {}, from backup {} to {}; {} restorable backup(s) in the window, {} known bad.",
            w.window_days,
            human_duration(w.seconds),
            w.from_backup,
            w.to_backup
                .as_ref()
                .map_or("now".to_string(), |b| format!("backup {b}")),
            w.restorable_in_window,
            w.known_bad_in_window
        ),
    }
}

fn summary_sentence(l: &DrillRecord) -> String {
    format!(
        "Latest drill: {} on {}{}, backup {}: RTO {} (target {}, {}), RPO {} (target {}, {}), worst RPO over {} days {}.",
        outcome_word(l.outcome),
        l.started_at.format("%Y-%m-%d %H:%M UTC"),
        l.drill.as_ref().map_or(String::new(), |d| format!(" (drill '{d}')")),
        l.backup.as_ref().map_or("none".into(), |b| b.id.to_string()),
        opt_dur(l.rto_seconds),
        human_duration(l.targets.rto_seconds),
        met(l.targets.rto_met),
        opt_dur(l.rpo_seconds),
        human_duration(l.targets.rpo_seconds),
        met(l.targets.rpo_met),
        crate::drill::WORST_RPO_WINDOW_DAYS,
        opt_dur(l.worst_rpo.as_ref().map(|w| w.seconds)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::records::{DrillBackup, DrillTargets, RECORD_FORMAT_VERSION};
    use crate::catalog::{manifest::Phase, BackupId};

    fn record(t: &str, rto: Option<f64>, outcome: Outcome) -> DrillRecord {
        let at: DateTime<Utc> = t.parse().unwrap();
        DrillRecord {
            backup_signature: None,
            format_version: RECORD_FORMAT_VERSION,
            pgdr_version: "0.1.0".into(),
            database: "app".into(),
            drill: Some("monthly".into()),
            outcome,
            started_at: at,
            finished_at: at,
            selection: "newest".into(),
            backup: Some(DrillBackup {
                id: BackupId::from_time(at - chrono::Duration::hours(1)),
                snapshot_time: at - chrono::Duration::hours(1),
                server_version: "16.4".into(),
                dump_bytes: 1,
                stored_bytes: 1,
            }),
            phases: vec![
                Phase {
                    name: "restore".into(),
                    seconds: 2.0,
                },
                Phase {
                    name: "teardown".into(),
                    seconds: 1.0,
                },
            ],
            rto_seconds: rto,
            elapsed_seconds: 2.0,
            rpo_seconds: Some(3600.0),
            rpo_source: Some("backup".into()),
            worst_rpo: None,
            targets: DrillTargets {
                rto_seconds: 900.0,
                rpo_seconds: 300.0,
                rto_from: "default".into(),
                rpo_from: "default".into(),
                rto_met: rto.map(|r| r <= 900.0),
                rpo_met: Some(false),
            },
            checks: vec![CheckResult {
                name: "anon <sees> nothing".into(),
                sql: "SELECT 1".into(),
                expect: "no rows".into(),
                passed: false,
                rows: Some(3),
                value: Some("1".into()),
                message: Some("expected no rows, got 3 rows".into()),
                seconds: 0.01,
            }],
            differences: vec![],
            failures: vec![
                "smoke check 'anon <sees> nothing': expected no rows, got 3 rows".into(),
            ],
            error: None,
            scratch: Some("ephemeral PostgreSQL 16.4 cluster".into()),
            scratch_server_version: Some("16.4".into()),
            host: "h".into(),
            replay: None,
        }
    }

    #[test]
    fn html_report_is_self_contained_with_charts_and_escaped_text() {
        let drills = vec![
            record("2026-03-01T03:00:00Z", Some(2.0), Outcome::Failed),
            record("2026-03-02T03:00:00Z", None, Outcome::Failed),
        ];
        let sec = Section {
            database: "app".into(),
            schedule: crate::drill::rpo::schedule_verdict(Some((86400.0, 1)), None, 300.0),
            worst_rpo_now: None,
            backups: 2,
            drills,
        };
        let h = render(
            &[sec],
            Format::Html,
            "2026-03-03T00:00:00Z".parse().unwrap(),
        );
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert_eq!(h.matches("<svg ").count(), 2, "{h}");
        assert!(h.contains("aria-label=\"RTO over time\""));
        assert!(
            h.contains("\nRTO over time\n</text>"),
            "plotters draws the caption as text"
        );
        assert!(h.contains("target 15m 00s"));
        assert!(h.contains("cannot be met by the backup schedule"));
        assert!(h.contains("anon &lt;sees&gt; nothing"));
        assert!(!h.contains("anon <sees>"));
        // Self-contained: nothing fetched from elsewhere.
        assert!(!h.contains("src=\"http") && !h.contains("<link") && !h.contains("<script"));
        assert_eq!(h.matches("<tr class=\"drill\">").count(), 2);
        // Newest first in the history.
        let a = h.find("2026-03-02 03:00:00").unwrap();
        let b = h.find("2026-03-01 03:00:00").unwrap();
        assert!(a < b);
        let md = render(&[], Format::Md, Utc::now());
        assert!(md.starts_with("# Recovery drills"));
    }

    #[test]
    fn history_table_has_a_row_per_drill() {
        let r = record("2026-03-01T03:00:00Z", Some(2.0), Outcome::Failed);
        let t = render_history(std::slice::from_ref(&r));
        assert!(t.lines().nth(1).unwrap().contains("FAILED"), "{t}");
        assert!(t.contains("2.0s"));
        let d = render_drill(&r, "app/drills/x.json");
        assert!(d.starts_with("drill 'monthly' of 'app': FAILED\n"), "{d}");
        assert!(d.contains("FAIL  anon <sees> nothing: expected no rows, got 3 rows"));
        assert_eq!(chart::unit_for(30.0).1, "seconds");
        assert_eq!(chart::unit_for(86400.0).1, "hours");
    }
}
