//! Rendering drills: one drill as text, the history table, and the report (one self-contained
//! HTML file with SVG charts drawn by plotters, or Markdown, or JSON).

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone, Utc};
use plotters::prelude::*;

use super::rpo::{human_duration, ScheduleVerdict};
use crate::catalog::records::{CheckResult, DrillRecord, Outcome, WorstRpo};

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
        "teardown" => "remove the scratch database (after the RTO)",
        "failed" => "the step that failed",
        _ => "",
    }
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
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "  {k:<13} {v}");
    };
    match &r.backup {
        Some(b) => line(
            "backup",
            format!(
                "{} ({}; snapshot {}, PostgreSQL {})",
                b.id,
                r.selection,
                b.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
                b.server_version
            ),
        ),
        None => line("backup", "none".into()),
    }
    if let Some(sc) = &r.scratch {
        line(
            "restored into",
            match &r.scratch_server_version {
                Some(v) if !sc.contains(v.split_whitespace().next().unwrap_or("")) => {
                    format!("{sc} (PostgreSQL {v})")
                }
                _ => sc.clone(),
            },
        );
    }
    line(
        "phases",
        r.phases
            .iter()
            .map(|p| format!("{} {:.2}s", p.name, p.seconds))
            .collect::<Vec<_>>()
            .join(", "),
    );
    line(
        "RTO",
        format!(
            "{:<10} target {:<9} {}",
            opt_dur(r.rto_seconds),
            human_duration(r.targets.rto_seconds),
            met(r.targets.rto_met)
        ),
    );
    line(
        "RPO",
        format!(
            "{:<10} target {:<9} {}",
            opt_dur(r.rpo_seconds),
            human_duration(r.targets.rpo_seconds),
            met(r.targets.rpo_met)
        ),
    );
    match &r.worst_rpo {
        Some(w) => line(
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
        ),
        None => line("worst RPO", "unknown: no restorable backup".into()),
    }
    for c in &r.checks {
        let got = check_got(c).map_or(String::new(), |g| format!(" ({g})"));
        match &c.message {
            None => line("check", format!("ok    {}: {}{got}", c.name, c.expect)),
            Some(m) => line("check", format!("FAIL  {}: {m}", c.name)),
        }
    }
    for d in &r.differences {
        line("difference", d.clone());
    }
    for f in &r.failures {
        line("failure", f.clone());
    }
    if !key.is_empty() {
        line("recorded", key.to_string());
    }
    s
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
        rpo: opt_dur(r.rpo_seconds),
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
        Format::Md => markdown(sections, now),
        Format::Html => html(sections, now),
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(sections: &[Section], now: DateTime<Utc>) -> String {
    let mut s = format!(
        "# Recovery drills\n\nGenerated {} by pgdr {}.\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION")
    );
    for sec in sections {
        let _ = write!(s, "\n## Database {}\n\n", sec.database);
        if let Some(l) = sec.drills.last() {
            let _ = writeln!(s, "{}\n", summary_sentence(l));
        }
        let _ = write!(
            s,
            "### Backup schedule and the RPO target\n\n{}\n\n{}\n\n",
            sec.schedule.sentence,
            worst_now_sentence(sec)
        );
        if let Some(l) = sec.drills.last() {
            s.push_str("### Latest drill: phases\n\n| phase | seconds | share | what it covers |\n|---|---:|---:|---|\n");
            let total: f64 = rto_phases(l).iter().map(|p| p.1).sum::<f64>().max(1e-9);
            for (name, secs, in_rto) in all_phases(l) {
                let share = if in_rto {
                    format!("{:.0}%", 100.0 * secs / total)
                } else {
                    "-".into()
                };
                let _ = writeln!(
                    s,
                    "| {name} | {secs:.2} | {share} | {} |",
                    md_cell(phase_meaning(&name))
                );
            }
            let _ = writeln!(
                s,
                "| **RTO** | **{}** | | target {} |\n",
                opt_dur(l.rto_seconds),
                human_duration(l.targets.rto_seconds)
            );
            if !l.checks.is_empty() {
                s.push_str("| check | expect | result |\n|---|---|---|\n");
                for c in &l.checks {
                    let _ = writeln!(
                        s,
                        "| {} | `{}` | {} |",
                        md_cell(&c.name),
                        md_cell(&c.expect),
                        md_cell(c.message.as_deref().unwrap_or("ok"))
                    );
                }
                s.push('\n');
            }
            for f in &l.failures {
                let _ = writeln!(s, "- {}", md_cell(f));
            }
            if !l.failures.is_empty() {
                s.push('\n');
            }
        }
        s.push_str("### History\n\nCharts of RTO and RPO over time are in the HTML report (`--format html`).\n\n");
        s.push_str("| started (UTC) | drill | backup | RTO | RPO | worst RPO (30 d) | targets (RTO / RPO) | result | failed checks |\n|---|---|---|---:|---:|---:|---|---|---:|\n");
        for h in sec.drills.iter().rev().map(history_row) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                h.started,
                md_cell(&h.drill),
                h.backup,
                h.rto,
                h.rpo,
                h.worst_rpo,
                h.targets,
                outcome_word(h.outcome),
                h.failed_checks
            );
        }
    }
    s
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
            super::WORST_RPO_WINDOW_DAYS,
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
        super::WORST_RPO_WINDOW_DAYS,
        opt_dur(l.worst_rpo.as_ref().map(|w| w.seconds)),
    )
}

// ---------------------------------------------------------------------------------------------
// HTML

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}\
.meta{color:#666}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}\
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#17803d;font-weight:600}\
.fail{color:#b42318;font-weight:600}.err{color:#b54708;font-weight:600}\
.verdict{padding:.6em .8em;border-radius:4px}.verdict.ok{background:#ecfdf3}.verdict.bad{background:#fef3f2}\
.bar{background:#4e79a7;height:.8em;display:inline-block;vertical-align:middle}\
.chart svg{max-width:100%;height:auto;border:1px solid #eee}code{background:#f4f4f4;padding:0 .2em}";

fn class_of(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "pass",
        Outcome::Failed => "fail",
        Outcome::Error => "err",
    }
}

fn html(sections: &[Section], now: DateTime<Utc>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pgdr recovery drills</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>Recovery drills</h1>\n<p class=\"meta\">Generated {} by pgdr {}. RTO: drill start to restored, fingerprint equal and smoke checks passed. RPO: drill start minus the snapshot time of the backup restored. Worst RPO: the largest gap between restorable backups over the last {} days, or since the newest one.</p>\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION"),
        super::WORST_RPO_WINDOW_DAYS
    );
    for sec in sections {
        let _ = writeln!(
            s,
            "<section id=\"db-{0}\">\n<h2>Database {0}</h2>",
            esc(&sec.database)
        );
        match sec.drills.last() {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "<p class=\"verdict {}\">{}</p>",
                    if l.outcome == Outcome::Passed {
                        "ok"
                    } else {
                        "bad"
                    },
                    esc(&summary_sentence(l))
                );
            }
            None => s.push_str(
                "<p class=\"verdict bad\">No drill recorded for this database yet.</p>\n",
            ),
        }
        let _ = writeln!(
            s,
            "<h3>Backup schedule and the RPO target</h3>\n<p class=\"verdict {}\" id=\"schedule-{}\">{}</p>",
            if sec.schedule.meets_target { "ok" } else { "bad" },
            esc(&sec.database),
            esc(&sec.schedule.sentence)
        );
        let _ = writeln!(s, "<p>{}</p>", esc(&worst_now_sentence(sec)));
        if let Some(l) = sec.drills.last() {
            latest_html(&mut s, l);
        }
        let rto: Vec<Point> = sec
            .drills
            .iter()
            .map(|d| Point {
                t: d.started_at,
                v: d.rto_seconds,
                passed: d.outcome == Outcome::Passed,
            })
            .collect();
        let rpo: Vec<Point> = sec
            .drills
            .iter()
            .map(|d| Point {
                t: d.started_at,
                v: d.rpo_seconds,
                passed: d.outcome == Outcome::Passed,
            })
            .collect();
        let worst: Vec<(DateTime<Utc>, f64)> = sec
            .drills
            .iter()
            .filter_map(|d| d.worst_rpo.as_ref().map(|w| (d.started_at, w.seconds)))
            .collect();
        let rto_target = sec.drills.last().map(|d| d.targets.rto_seconds);
        let rpo_target = sec
            .drills
            .last()
            .map_or(sec.schedule.rpo_target_seconds, |d| d.targets.rpo_seconds);
        s.push_str("<h3>RTO over time</h3>\n<div class=\"chart\">\n");
        s.push_str(&chart_or_note(chart(
            "RTO over time",
            "RTO",
            &rto,
            &[],
            rto_target,
        )));
        s.push_str("</div>\n<h3>RPO over time</h3>\n<div class=\"chart\">\n");
        s.push_str(&chart_or_note(chart(
            "RPO over time",
            "RPO",
            &rpo,
            &worst,
            Some(rpo_target),
        )));
        s.push_str("</div>\n");
        history_html(&mut s, sec);
        s.push_str("</section>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

fn chart_or_note(r: Result<String, String>) -> String {
    match r {
        Ok(svg) => svg + "\n",
        Err(e) => format!(
            "<p class=\"err\">chart could not be drawn: {}</p>\n",
            esc(&e)
        ),
    }
}

fn latest_html(s: &mut String, l: &DrillRecord) {
    s.push_str("<h3>Latest drill: phases</h3>\n<table class=\"phases\">\n<tr><th>phase</th><th>seconds</th><th>share of RTO</th><th></th><th>what it covers</th></tr>\n");
    let total: f64 = rto_phases(l).iter().map(|p| p.1).sum::<f64>().max(1e-9);
    for (name, secs, in_rto) in all_phases(l) {
        let (share, bar) = if in_rto {
            let pct = 100.0 * secs / total;
            (
                format!("{pct:.0}%"),
                format!(
                    "<span class=\"bar\" style=\"width:{:.1}px\"></span>",
                    (pct * 2.0).max(1.0)
                ),
            )
        } else {
            ("-".into(), String::new())
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"num\">{secs:.2}</td><td class=\"num\">{share}</td><td>{bar}</td><td>{}</td></tr>",
            esc(&name),
            esc(phase_meaning(&name))
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>RTO</th><th class=\"num\">{}</th><th colspan=\"3\">target {} ({}): {}</th></tr>\n</table>",
        opt_dur(l.rto_seconds),
        human_duration(l.targets.rto_seconds),
        esc(&l.targets.rto_from),
        met(l.targets.rto_met)
    );
    if !l.checks.is_empty() {
        s.push_str("<table class=\"checks\">\n<tr><th>smoke check</th><th>expect</th><th>result</th><th>got</th><th>seconds</th></tr>\n");
        for c in &l.checks {
            let got = check_got(c).unwrap_or_else(|| {
                if c.rows == Some(0) {
                    "no rows".into()
                } else {
                    "-".into()
                }
            });
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}</td><td class=\"num\">{:.2}</td></tr>",
                esc(&c.name),
                esc(&c.expect),
                if c.passed { "pass" } else { "fail" },
                esc(c.message.as_deref().unwrap_or("ok")),
                esc(&got),
                c.seconds
            );
        }
        s.push_str("</table>\n");
    }
    if !l.failures.is_empty() {
        s.push_str("<p>Why it did not pass:</p>\n<ul class=\"failures\">\n");
        for f in &l.failures {
            let _ = writeln!(s, "<li>{}</li>", esc(f));
        }
        s.push_str("</ul>\n");
    }
    if !l.differences.is_empty() {
        s.push_str("<p>Fingerprint differences:</p>\n<ul class=\"differences\">\n");
        for d in &l.differences {
            let _ = writeln!(s, "<li>{}</li>", esc(d));
        }
        s.push_str("</ul>\n");
    }
    let _ = writeln!(
        s,
        "<p class=\"meta\">pgdr {} on {}; backup made by PostgreSQL {}; restored into {}{}.</p>",
        esc(&l.pgdr_version),
        esc(&l.host),
        esc(l.backup.as_ref().map_or("-", |b| b.server_version.as_str())),
        esc(l.scratch.as_deref().unwrap_or("nothing")),
        match (&l.scratch, &l.scratch_server_version) {
            (Some(sc), Some(v)) if !sc.contains(v.split_whitespace().next().unwrap_or("")) => {
                format!(" (PostgreSQL {})", esc(v))
            }
            _ => String::new(),
        }
    );
}

fn history_html(s: &mut String, sec: &Section) {
    s.push_str("<h3>History</h3>\n<table class=\"history\">\n<tr><th>started (UTC)</th><th>drill</th><th>backup</th><th>RTO</th><th>RPO</th><th>worst RPO (30 d)</th><th>targets RTO / RPO</th><th>result</th><th>failed checks</th><th>why</th></tr>\n");
    for h in sec.drills.iter().rev().map(history_row) {
        let _ = writeln!(
            s,
            "<tr class=\"drill\"><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            h.started,
            esc(&h.drill),
            h.backup,
            h.rto,
            h.rpo,
            h.worst_rpo,
            h.targets,
            class_of(h.outcome),
            outcome_word(h.outcome),
            h.failed_checks,
            esc(&h.why)
        );
    }
    s.push_str("</table>\n");
}

// ---------------------------------------------------------------------------------------------
// Charts

struct Point {
    t: DateTime<Utc>,
    v: Option<f64>,
    passed: bool,
}

/// Seconds → the unit that reads best for the largest value.
fn unit_for(max: f64) -> (f64, &'static str) {
    if max < 120.0 {
        (1.0, "seconds")
    } else if max < 2.0 * 3600.0 {
        (60.0, "minutes")
    } else if max < 2.0 * 86400.0 {
        (3600.0, "hours")
    } else {
        (86400.0, "days")
    }
}

/// A line chart of one measure per drill against its target, as inline SVG. Passed drills are
/// green dots, failed ones red; drills where the measure could not be taken are red crosses on
/// the axis. `extra` is a second series (the worst RPO).
fn chart(
    title: &str,
    what: &str,
    points: &[Point],
    extra: &[(DateTime<Utc>, f64)],
    target: Option<f64>,
) -> Result<String, String> {
    let max = points
        .iter()
        .filter_map(|p| p.v)
        .chain(extra.iter().map(|e| e.1))
        .chain(target)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let (div, unit) = unit_for(max);
    let ymax = max / div * 1.15;
    let ts: Vec<f64> = points.iter().map(|p| p.t.timestamp() as f64).collect();
    let (lo, hi) = match (
        ts.iter().cloned().reduce(f64::min),
        ts.iter().cloned().reduce(f64::max),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            let n = Utc::now().timestamp() as f64;
            (n, n)
        }
    };
    // A lone drill gets an hour either side; a history, a margin of its own span.
    let pad = if hi > lo {
        ((hi - lo) * 0.06).max(30.0)
    } else {
        1800.0
    };
    let (x0, x1) = (lo - pad, hi + pad);
    let span = x1 - x0;
    let fmt_x = move |x: &f64| -> String {
        let t = Utc.timestamp_opt(*x as i64, 0).single().unwrap_or_default();
        if span < 2.0 * 86400.0 {
            t.format("%m-%d %H:%M").to_string()
        } else {
            t.format("%Y-%m-%d").to_string()
        }
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (760, 320)).into_drawing_area();
        let e = |e: plotters::drawing::DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|y: &f64| {
                if *y >= 10.0 || *y == 0.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .y_desc(format!("{what} ({unit})"))
            .x_desc("drill (UTC)")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(e)?;
        let red = RGBColor(180, 35, 24);
        let green = RGBColor(23, 128, 61);
        let blue = RGBColor(78, 121, 167);
        let orange = RGBColor(242, 142, 43);
        if let Some(t) = target {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, t / div), (x1, t / div)],
                    8,
                    5,
                    red.stroke_width(2),
                ))
                .map_err(e)?
                .label(format!("target {}", human_duration(t)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2))
                });
        }
        if !extra.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    extra.iter().map(|(t, v)| (t.timestamp() as f64, v / div)),
                    orange.stroke_width(2),
                ))
                .map_err(e)?
                .label("worst RPO, last 30 days")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], orange.stroke_width(2))
                });
            chart
                .draw_series(extra.iter().map(|(t, v)| {
                    Rectangle::new(
                        [
                            (t.timestamp() as f64, v / div),
                            (t.timestamp() as f64, v / div),
                        ],
                        orange.stroke_width(5),
                    )
                }))
                .map_err(e)?;
        }
        let measured: Vec<(f64, f64, bool)> = points
            .iter()
            .filter_map(|p| p.v.map(|v| (p.t.timestamp() as f64, v / div, p.passed)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                measured.iter().map(|(x, y, _)| (*x, *y)),
                blue.stroke_width(2),
            ))
            .map_err(e)?
            .label(what.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2))
            });
        chart
            .draw_series(measured.iter().map(|(x, y, passed)| {
                Circle::new((*x, *y), 5, if *passed { green } else { red }.filled())
            }))
            .map_err(e)?;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.v.is_none())
                    .map(|p| Cross::new((p.t.timestamp() as f64, 0.0), 6, red.stroke_width(2))),
            )
            .map_err(e)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    // Name the chart for screen readers and for whoever greps the file.
    Ok(buf.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(title)),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::records::{DrillBackup, DrillTargets, RECORD_FORMAT_VERSION};
    use crate::catalog::{manifest::Phase, BackupId};

    fn record(t: &str, rto: Option<f64>, outcome: Outcome) -> DrillRecord {
        let at: DateTime<Utc> = t.parse().unwrap();
        DrillRecord {
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
            schedule: super::super::rpo::schedule_verdict(Some((86400.0, 1)), None, 300.0),
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
        assert_eq!(unit_for(30.0).1, "seconds");
        assert_eq!(unit_for(86400.0).1, "hours");
    }
}
