//! Point-in-time restore, the run: after the anchor is restored and proven, replay the stored
//! segments onto it up to the point, set sequences, refresh materialized views, and record the
//! tables as they are now (rows and digests, as `verify` computes them).

use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::StreamExt;

use crate::capture::pgoutput::Message;
use crate::catalog::format::replayed::{StoredReplayed, StoredTableState};
use crate::catalog::segments::{Commit, ListedSegment};
use crate::error::{PgdrError, Result};
use crate::restore::replay::{self, after, Bounds, ReplayReport, Stop};
use crate::source::Lsn;

use super::plan::Plan;
use super::point::PointPlan;

/// Sequence samples (`pgdr.sequences` messages) seen in the replayed stream: (LSN, content).
type Samples = Arc<Mutex<Vec<(Lsn, Vec<u8>)>>>;

/// Replay onto the restored database `target`; what was replayed, for the record.
pub(super) async fn run(
    plan: &Plan,
    point: &PointPlan,
    target: &crate::restore::Target,
    notes: &mut Vec<String>,
) -> Result<StoredReplayed> {
    let client = crate::source::connect(&target.database()).await?;
    let samples: Samples = Arc::default();
    let tap = samples.clone();
    let ids = plan.ids.clone();
    let stream =
        crate::capture::stream::messages(plan.catalog.clone(), point.segments.clone(), ids)
            .inspect(move |item| {
                if let Ok((
                    _,
                    Message::LogicalMessage {
                        lsn,
                        prefix,
                        content,
                        ..
                    },
                )) = item
                {
                    if prefix == after::SEQUENCES_PREFIX {
                        tap.lock().expect("samples").push((*lsn, content.clone()));
                    }
                }
            });
    let bounds = Bounds {
        from: Some(point.anchor.cut),
        stop: point.stop,
    };
    let report = replay::replay(&client, stream, bounds)
        .await
        .map_err(|f| PgdrError::from(f.error).context(format!("replaying to {}", point.point)))?;
    notes.extend(
        report
            .triggers_not_restored
            .iter()
            .map(|s| format!("a trigger could not be put back after the replay: run `{s}`")),
    );
    let last = report.last_applied.map_or(point.anchor.cut, |c| c.lsn);
    // The sample is the first at or after the point asked (a mark's or an LSN's position),
    // not after the last commit: nextval between that commit and the point counts too.
    let last = match point.stop {
        Stop::Lsn(l) => l.max(last),
        _ => last,
    };
    let mut samples = samples.lock().expect("samples").clone();
    if !samples.iter().any(|(l, _)| *l >= last) {
        // The replay stops at the first commit past the point; the sample that holds the
        // sequences as they were there comes after it, so read on until it shows.
        samples.extend(next_sample(plan, point, last).await?);
    }
    let sequences = match after::pick(&samples, last) {
        Some((lsn, s)) => {
            let n = after::apply_sample(&client, &s).await?;
            let raised = after::raise_to_owned_columns(&client).await?;
            format!("from the sample at {lsn} ({n} set), {raised} raised to their column's maximum")
        }
        None => {
            let raised = after::raise_to_owned_columns(&client).await?;
            notes.push("no sequence sample in the replayed changes: each sequence owned by a column is set to at least the column's maximum + 1; others keep the dump's value".into());
            format!("no sample: {raised} raised to their column's maximum")
        }
    };
    let views = after::refresh_matviews(&client).await?;
    if !views.is_empty() {
        notes.push(format!("refreshed {} materialized view(s)", views.len()));
    }
    let tables = table_states(plan, target).await?;
    Ok(replayed(point, &report, sequences, tables))
}

/// The first `pgdr.sequences` sample at or after `last` in the stored stream past the replayed
/// segments, if the stream holds one: sequences are not transactional, so the sample taken
/// after the point is the one that is never below what the source had handed out by then.
async fn next_sample(plan: &Plan, point: &PointPlan, last: Lsn) -> Result<Option<(Lsn, Vec<u8>)>> {
    let Some(database) = point.segments.first().map(|s| s.database.clone()) else {
        return Ok(None);
    };
    let later: Vec<_> = plan
        .catalog
        .segments(&database)
        .await?
        .into_iter()
        .filter_map(|s| match s {
            ListedSegment::Ok(e) if e.end > last => Some(*e),
            _ => None,
        })
        .collect();
    let stream = crate::capture::stream::messages(plan.catalog.clone(), later, plan.ids.clone());
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        if let (
            _,
            Message::LogicalMessage {
                lsn,
                prefix,
                content,
                ..
            },
        ) = item?
        {
            if prefix == after::SEQUENCES_PREFIX && lsn >= last {
                return Ok(Some((lsn, content)));
            }
        }
    }
    Ok(None)
}

fn replayed(
    point: &PointPlan,
    r: &ReplayReport,
    sequences: String,
    tables: Vec<StoredTableState>,
) -> StoredReplayed {
    let last = r.last_applied.map(|c| Commit {
        lsn: c.lsn,
        time: c.time,
        xid: c.xid,
    });
    let (distance_seconds, distance_bytes) = match point.stop {
        Stop::Time(t) => {
            let from = last.as_ref().map_or(point.anchor.time, |c| c.time);
            (Some((t - from).num_milliseconds() as f64 / 1000.0), None)
        }
        Stop::Lsn(l) => {
            let from = last.as_ref().map_or(point.anchor.cut, |c| c.lsn);
            (None, Some(l.0.saturating_sub(from.0)))
        }
        Stop::End => (None, None),
    };
    StoredReplayed {
        point: point.point.clone(),
        anchor_cut_lsn: point.anchor.cut,
        segments: point.segment_starts.clone(),
        last_commit: last,
        distance_seconds,
        distance_bytes,
        transactions: r.transactions,
        rows: r.rows(),
        replay_seconds: r.elapsed_secs,
        sequences,
        tables,
        at: Utc::now(),
    }
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
