//! The report as one self-contained HTML file (inline CSS and SVG, nothing fetched).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::chart::{chart, Point};
use super::{
    all_phases, check_got, history_row, met, opt_dur, outcome_word, phase_meaning, rto_phases,
    summary_sentence, worst_now_sentence, Section,
};
use crate::catalog::records::{DrillRecord, Outcome};
use crate::progress::human_duration;

pub(super) fn esc(s: &str) -> String {
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

pub(super) fn html(sections: &[Section], now: DateTime<Utc>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pgdr recovery drills</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>Recovery drills</h1>\n<p class=\"meta\">Generated {} by pgdr {}. RTO: drill start to restored, fingerprint equal and smoke checks passed. RPO: drill start minus the snapshot time of the backup restored, or, marked (capture), the time since the newest change durable in the repository. Worst RPO: the largest gap between restorable backups over the last {} days, or since the newest one.</p>\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION"),
        crate::drill::WORST_RPO_WINDOW_DAYS
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
        charts_html(&mut s, sec);
        history_html(&mut s, sec);
        s.push_str("</section>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// The RTO and RPO charts of one database, each with its target.
fn charts_html(s: &mut String, sec: &Section) {
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
    if let Some(r) = &l.replay {
        let _ = writeln!(
            s,
            "<p class=\"replay\">Replayed to a point: {}.</p>",
            esc(&super::replay_summary(r))
        );
    }
    checks_html(s, l);
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

/// The smoke checks of the latest drill, one row each.
fn checks_html(s: &mut String, l: &DrillRecord) {
    if l.checks.is_empty() {
        return;
    }
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
