//! The choice itself, pure (unit-tested): the newest anchor before the point, the segments
//! from its cut on, and the reasons a point cannot be reached.

use crate::catalog::segments::{Gap, SegmentEntry};
use crate::error::{PgdrError, Result};
use crate::restore::replay::Stop;
use crate::source::Lsn;

use super::{Anchor, PointPlan, Target, Window};

pub(super) fn window(anchors: &[Anchor], segments: &[SegmentEntry]) -> Option<Window> {
    let first = segments.first()?;
    let last = segments.last()?;
    // The oldest anchor the stored stream reaches back to.
    let a = anchors.iter().find(|a| a.cut >= first.start)?;
    Some(Window {
        from: a.cut,
        from_time: a.time,
        to: last.end,
        to_time: segments
            .iter()
            .rev()
            .find_map(|s| s.last_commit.as_ref().map(|c| c.time)),
    })
}

fn describe(w: &Window) -> String {
    format!(
        "{} ({}) .. {} ({})",
        w.from,
        w.from_time.to_rfc3339(),
        w.to,
        w.to_time.map_or("no commit yet".into(), |t| t.to_rfc3339())
    )
}

fn refuse(point: &str, reason: String, w: &Window) -> PgdrError {
    PgdrError::usage(format!("cannot restore to {point}: {reason}"))
        .hint(format!("the captured changes cover {}", describe(w)))
}

/// Choose the anchor and the segments for `target`; refuse what the repository cannot reach.
pub(crate) fn choose(
    point: &str,
    target: Target,
    anchors: &[Anchor],
    segments: &[SegmentEntry],
    gaps: &[Gap],
) -> Result<PointPlan> {
    if anchors.is_empty() {
        return Err(PgdrError::usage(format!(
            "cannot restore to {point}: no anchored backup (taken with capture enabled) to replay onto"
        ))
        .hint("take one with `pgdr backup` while capture is enabled"));
    }
    let Some(w) = window(anchors, segments) else {
        return Err(PgdrError::usage(format!(
            "cannot restore to {point}: no stored changes reach back to an anchored backup"
        ))
        .hint("is `pgdr capture run` running? `pgdr capture check` shows what is stored"));
    };
    let newest_time = w.to_time;
    // The anchor: the newest whose cut (time) is at or before the point.
    let anchor = match target {
        Target::Lsn(l) => anchors.iter().rev().find(|a| a.cut <= l && a.cut >= w.from),
        Target::Time(t) => anchors
            .iter()
            .rev()
            .find(|a| a.time <= t && a.cut >= w.from),
        Target::End => anchors.last().filter(|a| a.cut >= w.from),
    };
    let Some(anchor) = anchor.cloned() else {
        return Err(refuse(
            point,
            "it is before the oldest anchored backup the stored changes reach".into(),
            &w,
        )
        .hint(format!(
            "the nearest reachable point: --at-lsn {} (the oldest anchor's cut)",
            w.from
        ))
        .hint("or restore a dump alone with --before TIME"));
    };
    match target {
        Target::Lsn(l) if l >= w.to => {
            return Err(refuse(
                point,
                format!("it is after the newest stored change ({})", w.to),
                &w,
            )
            .hint("wait for `pgdr capture run` to store it, or restore to --at latest"))
        }
        Target::Time(t) if newest_time.is_none_or(|n| t > n) => {
            return Err(
                refuse(point, "it is after the newest stored commit".into(), &w)
                    .hint("wait for `pgdr capture run` to store it, or restore to --at latest"),
            )
        }
        _ => {}
    }
    let needed = needed(segments, anchor.cut, target);
    let upper = match target {
        Target::Lsn(l) => l,
        _ => needed.last().map_or(anchor.cut, |s| s.end),
    };
    check_reachable(point, &anchor, &needed, gaps, upper, anchors, &w)?;
    Ok(PointPlan {
        point: point.to_string(),
        stop: stop_of(target),
        segment_starts: needed.iter().map(|s| s.start).collect(),
        transactions_at_most: needed.iter().map(|s| s.transactions).sum(),
        rows_at_most: needed.iter().map(|s| s.rows).sum(),
        replay_rate: None,
        estimated_replay_seconds: None,
        segments: needed,
        anchor,
        window: w,
    })
}

fn stop_of(target: Target) -> Stop {
    match target {
        Target::Lsn(l) => Stop::Lsn(l),
        Target::Time(t) => Stop::Time(t),
        Target::End => Stop::End,
    }
}

/// The segments holding commits from `cut` up to the point.
fn needed(segments: &[SegmentEntry], cut: Lsn, target: Target) -> Vec<SegmentEntry> {
    let mut out = Vec::new();
    for s in segments.iter().filter(|s| s.end > cut) {
        match target {
            Target::Lsn(l) if s.start > l => break,
            Target::Time(t) if s.first_commit.as_ref().is_some_and(|c| c.time > t) => break,
            _ => {}
        }
        out.push(s.clone());
        if let Target::Time(t) = target {
            if s.last_commit.as_ref().is_some_and(|c| c.time > t) {
                break;
            }
        }
    }
    out
}

/// A hole in the chain, a recorded gap or a schema change between the cut and the point.
fn check_reachable(
    point: &str,
    anchor: &Anchor,
    needed: &[SegmentEntry],
    gaps: &[Gap],
    upper: Lsn,
    anchors: &[Anchor],
    w: &Window,
) -> Result<()> {
    let after = |lsn: Lsn| {
        anchors.iter().find(|a| a.cut >= lsn).map_or_else(
            || "no anchored backup after it yet: take one with `pgdr backup`".to_string(),
            |a| format!("--at-lsn {} (backup {} is anchored after it)", a.cut, a.id),
        )
    };
    if let Some(g) = gaps.iter().find(|g| g.from < upper && g.to > anchor.cut) {
        return Err(refuse(
            point,
            format!(
                "the stored changes have a gap from {} to {} ({}{}): changes in it are lost",
                g.from,
                g.to,
                serde_json::to_value(g.cause)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                g.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            w,
        )
        .hint(format!(
            "nearest reachable before it: --at-lsn {}",
            before(g.from, anchor.cut)
        ))
        .hint(format!("nearest reachable after it: {}", after(g.to))));
    }
    let mut expect = anchor.cut;
    for s in needed {
        if s.start > expect {
            return Err(refuse(
                point,
                format!(
                    "no stored changes between {expect} and {} (a hole in the segments)",
                    s.start
                ),
                w,
            )
            .hint(format!(
                "nearest reachable before it: --at-lsn {}",
                before(expect, anchor.cut)
            ))
            .hint(format!("nearest reachable after it: {}", after(s.start))));
        }
        if let Some(sc) = s.schema_change.as_ref().filter(|sc| sc.lsn <= upper) {
            return Err(refuse(
                point,
                format!(
                    "table {}.{} changed its schema at {}: the anchor's dump has the old one",
                    sc.namespace, sc.name, sc.lsn
                ),
                w,
            )
            .hint(format!(
                "nearest reachable before it: --at-lsn {}",
                before(sc.lsn, anchor.cut)
            ))
            .hint(format!("nearest reachable after it: {}", after(sc.lsn))));
        }
        expect = s.end;
    }
    Ok(())
}

/// The last position before `lsn` (never before the anchor's cut).
fn before(lsn: Lsn, cut: Lsn) -> Lsn {
    Lsn(lsn.0.saturating_sub(1).max(cut.0))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
