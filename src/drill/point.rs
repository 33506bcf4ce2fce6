//! A drill of a point (`selection = { random_point_within_days = N }`): a random moment
//! inside the covered, replayable window of the last N days, planned as `restore --at` plans
//! it (`restore::point`), its anchor restored and proven as any drill's backup, then the
//! stored changes replayed onto it. The proof of the replayed copy: no divergence and
//! sequences set (the replay's own), its tables' rows and digests recorded, and where a later
//! anchored backup's cut falls exactly at the point, that backup's fingerprint compared.

use chrono::{DateTime, Utc};

use crate::catalog::{Catalog, Listed, Manifest};
use crate::codec::Identities;
use crate::error::{PgdrError, Result};
use crate::restore::point::{self, run as point_run, PointPlan, Target};
use crate::source::Lsn;
use crate::verify::{self, Scratch};

use super::random_index;

/// A random point's plan can be refused (a gap, a schema change): try this many moments.
const ATTEMPTS: usize = 32;

/// Refuse before anything runs when a database has no change capture: nothing to replay.
pub(super) async fn require_capture(catalog: &Catalog, db: &str, days: u32) -> Result<()> {
    if catalog.capture_state(db).await?.is_none() {
        return Err(PgdrError::config(format!(
            "selection = {{ random_point_within_days = {days} }} needs change capture, and database '{db}' has none: there are no changes to replay to a point"
        ))
        .hint("enable it with `pgdr capture enable` (then keep `pgdr capture run` running and take a backup), or drill with selection = \"newest\""));
    }
    Ok(())
}

/// The anchor and the plan of a random replayable moment of the last `days` days; Err(why)
/// is a failed drill, recorded.
pub(super) async fn choose(
    catalog: &Catalog,
    listed: &[Listed],
    db: &str,
    days: u32,
    now: DateTime<Utc>,
) -> Result<std::result::Result<(Manifest, PointPlan), String>> {
    let inputs = match point::inputs(catalog, db).await {
        Ok(i) => i,
        Err(e) => return Ok(Err(format!("no point to drill: {}", e.message))),
    };
    let Some(w) = inputs.window() else {
        return Ok(Err(format!(
            "no point to drill: no stored changes of database '{db}' reach back to an anchored backup"
        )));
    };
    let lo = w.from_time.max(now - chrono::Duration::days(days as i64));
    let Some(hi) = w.to_time.filter(|hi| *hi >= lo) else {
        return Ok(Err(format!(
            "no point to drill: the captured changes of database '{db}' have no commit in the last {days} days after an anchored backup"
        )));
    };
    let span = (hi - lo).num_milliseconds().max(0) as usize + 1;
    let mut last_refusal = String::new();
    for _ in 0..ATTEMPTS {
        let t = lo + chrono::Duration::milliseconds(random_index(span) as i64);
        match inputs.choose(&format!("time {}", t.to_rfc3339()), Target::Time(t)) {
            Ok(p) => {
                // Planted segments would be replayed onto the copy: signed ones only.
                match catalog.authenticate_segments(db, &p.segment_starts).await {
                    Err(e) if e.kind == crate::error::Kind::Crypto => {
                        return Ok(Err(format!("{} ({})", e.message, e.hints.join("; "))))
                    }
                    r => {
                        r?;
                    }
                }
                let p = point::with_recorded_rate(catalog, db, p).await?;
                return Ok(anchor_manifest(listed, &p.anchor.id).map(|m| (m, p)));
            }
            Err(e) => last_refusal = e.message,
        }
    }
    Ok(Err(format!(
        "no replayable point found in the last {days} days of database '{db}' ({ATTEMPTS} tried; the last: {last_refusal})"
    )))
}

fn anchor_manifest(listed: &[Listed], id: &str) -> std::result::Result<Manifest, String> {
    listed
        .iter()
        .find_map(|l| match l {
            Listed::Ok(e) if e.manifest.id.to_string() == id => Some(e.manifest.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("the anchored backup {id} of the point cannot be read"))
}

/// Replay onto the restored, proven anchor; the record's `replay` and failures. Whether the
/// replayed copy is proven.
pub(super) async fn replay(
    catalog: &Catalog,
    ids: Identities,
    plan: &PointPlan,
    sc: &Scratch,
    m: &Manifest,
    rec: &mut crate::catalog::records::DrillRecord,
) -> bool {
    let r = match point_run::replay_to(catalog, ids, plan, &sc.target.database()).await {
        Ok(r) => r,
        Err(e) => {
            rec.failures.push(format!("replay to {}: {e}", plan.point));
            return false;
        }
    };
    let Some(f) = m.fingerprint.as_ref() else {
        rec.failures.push(format!(
            "backup {} has no fingerprint: the replayed tables cannot be measured",
            m.id
        ));
        return false;
    };
    // Large objects are not in the change stream: tables only.
    let mut tables = f.data.clone();
    tables.large_objects.clear();
    let actual = match verify::recompute_data(&sc.target, &tables, 2).await {
        Ok(a) => a,
        Err(e) => {
            rec.failures
                .push(format!("measuring the replayed tables: {}", e.message));
            return false;
        }
    };
    let mut proven = true;
    if let Some(later) = backup_at_point(catalog, m, &r.report).await {
        if let Some(lf) = later.fingerprint.as_ref() {
            let mut want = lf.data.clone();
            want.large_objects.clear();
            let where_ = format!("at the cut of backup {} (the drilled point)", later.id);
            let d = verify::compare_data(&want, &actual, &where_);
            proven = d.is_empty();
            rec.failures.extend(d);
        }
    }
    let states = actual
        .tables
        .into_iter()
        .map(|((schema, name), (rows, digest))| {
            crate::catalog::format::replayed::StoredTableState {
                schema,
                name,
                rows,
                digest,
            }
        })
        .collect();
    rec.replay = Some(point_run::replayed(plan, &r.report, r.sequences, states));
    proven
}

/// An anchored backup whose cut lies exactly at the point reached: after the last applied
/// commit and at or before the first one left out. Its dump holds exactly what was replayed.
async fn backup_at_point(
    catalog: &Catalog,
    anchor: &Manifest,
    r: &crate::restore::replay::ReplayReport,
) -> Option<Manifest> {
    let (last, next) = (r.last_applied?.lsn, r.first_not_applied?.lsn);
    let listed = catalog.list(Some(&anchor.database)).await.ok()?;
    listed.into_iter().find_map(|l| match l {
        Listed::Ok(e)
            if e.manifest.id != anchor.id
                && cut_at_point(e.manifest.snapshot.cut_lsn, last, next) =>
        {
            Some(e.manifest)
        }
        _ => None,
    })
}

/// A dump at `cut` holds the transactions committed before it: exactly those replayed when
/// the last applied commit is before the cut and the first left out is at or after it.
fn cut_at_point(cut: Option<Lsn>, last_applied: Lsn, first_left_out: Lsn) -> bool {
    cut.is_some_and(|c| c > last_applied && c <= first_left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_backup_is_the_point_only_when_its_cut_lies_between_the_last_applied_and_the_next_commit(
    ) {
        let (last, next) = (Lsn(100), Lsn(200));
        assert!(cut_at_point(Some(Lsn(101)), last, next));
        assert!(cut_at_point(Some(Lsn(200)), last, next));
        // The last applied commit is in a dump cut after it, not at it.
        assert!(!cut_at_point(Some(Lsn(100)), last, next));
        // A cut past the next commit holds a transaction the replay left out.
        assert!(!cut_at_point(Some(Lsn(201)), last, next));
        assert!(!cut_at_point(None, last, next));
    }
}
