//! Rendering of a point-in-time restore: its plan (anchor, segments, window) and what the
//! replay did (last commit, distance to the point, tables).

use crate::catalog::format::replayed::StoredReplayed;
use crate::restore::point::PointPlan;

pub(super) fn plan_lines(p: &PointPlan, s: &mut String) {
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
    line("point", p.point.clone());
    line(
        "anchor",
        format!(
            "backup {} (cut {}, {})",
            p.anchor.id,
            p.anchor.cut,
            p.anchor.time.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    );
    line(
        "replay",
        format!(
            "{} segment(s) from {}, at most {} transaction(s), {}",
            p.segment_starts.len(),
            p.segment_starts
                .first()
                .map_or("-".to_string(), |l| l.to_string()),
            p.transactions_at_most,
            p.rows_at_most.map_or(
                "row count unknown (segments stored before pgdr counted rows)".to_string(),
                |r| format!("at most {r} row(s)")
            )
        ),
    );
    line("estimate", estimate(p));
    line(
        "covered window",
        format!(
            "{} ({}) .. {}{}",
            p.window.from,
            p.window.from_time.format("%Y-%m-%d %H:%M:%S UTC"),
            p.window.to,
            p.window
                .to_time
                .map(|t| format!(" (last commit {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default()
        ),
    );
}

pub(super) fn report_lines(r: &StoredReplayed, s: &mut String) {
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
    line(
        "replayed",
        format!(
            "{} transaction(s), {} row(s) from {} segment(s) onto cut {} in {:.1}s",
            r.transactions,
            r.rows,
            r.segments.len(),
            r.anchor_cut_lsn,
            r.replay_seconds
        ),
    );
    line(
        "last commit",
        match &r.last_commit {
            Some(c) => format!(
                "LSN {}, xid {}, {}",
                c.lsn,
                c.xid,
                c.time.format("%Y-%m-%d %H:%M:%S%.6f UTC")
            ),
            None => "none after the anchor's cut: the dump is the point".into(),
        },
    );
    let distance = match (r.distance_seconds, r.distance_bytes) {
        (Some(secs), _) => format!("{secs:.3}s before {}", r.point),
        (_, Some(b)) => format!("{b} WAL bytes before {}", r.point),
        _ => format!("{} (everything stored)", r.point),
    };
    line("distance", distance);
    line("sequences", r.sequences.clone());
    line(
        "tables",
        format!(
            "{} table(s), {} row(s) after the replay (digests in the record)",
            r.tables.len(),
            r.tables.iter().map(|t| t.rows).sum::<u64>()
        ),
    );
}

/// The replay time at the last recorded rate, or why there is none.
fn estimate(p: &PointPlan) -> String {
    match (&p.replay_rate, p.estimated_replay_seconds) {
        (Some(r), Some(secs)) => format!(
            "replay about {} at {:.0} rows/s, {:.0} transactions/s (recorded {} in {})",
            crate::progress::human_duration(secs),
            r.rows_per_second,
            r.transactions_per_second,
            r.at.format("%Y-%m-%d %H:%M UTC"),
            r.record
        ),
        _ => {
            "no replay rate recorded yet: the first restore or drill to a point measures one".into()
        }
    }
}
