//! Point-in-time restore, the run: after the anchor is restored and proven, replay the stored
//! segments onto it up to the point (`restore::point::run`), and record the tables as they
//! are now (rows and digests, as `verify` computes them).

use crate::catalog::format::replayed::{StoredReplayed, StoredTableState};
use crate::error::Result;
use crate::restore::point::{run as point_run, PointPlan};

use super::plan::Plan;

/// Replay onto the restored database `target`; what was replayed, for the record.
pub(super) async fn run(
    plan: &Plan,
    point: &PointPlan,
    target: &crate::restore::Target,
    notes: &mut Vec<String>,
) -> Result<StoredReplayed> {
    let r =
        point_run::replay_to(&plan.catalog, plan.ids.clone(), point, &target.database()).await?;
    notes.extend(r.notes);
    let tables = table_states(plan, target).await?;
    Ok(point_run::replayed(point, &r.report, r.sequences, tables))
}

/// Rows and digests of the dump's tables after the replay, by `verify`'s own computation.
async fn table_states(
    plan: &Plan,
    target: &crate::restore::Target,
) -> Result<Vec<StoredTableState>> {
    let Some(f) = plan.manifest.fingerprint.as_ref() else {
        return Ok(Vec::new());
    };
    let d = crate::verify::recompute_data(target, &f.data, plan.jobs.max(1) as usize).await?;
    Ok(d.tables
        .into_iter()
        .map(|((schema, name), (rows, digest))| StoredTableState {
            schema,
            name,
            rows,
            digest,
        })
        .collect())
}
