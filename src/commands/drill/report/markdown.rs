//! The report as Markdown.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{
    all_phases, history_row, opt_dur, outcome_word, phase_meaning, rto_phases, summary_sentence,
    worst_now_sentence, Section,
};
use crate::progress::human_duration;

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(super) fn markdown(sections: &[Section], now: DateTime<Utc>) -> String {
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
