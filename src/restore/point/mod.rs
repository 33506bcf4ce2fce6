//! Point-in-time restore, the plan: which anchored backup, which segments, and whether the
//! point can be reached at all (inside the covered window, not behind a gap or a schema
//! change). Decided from the repository alone, before the target is touched. A stage of its
//! own (not `pgdr restore`'s) so that drills plan their points the same way.

use chrono::{DateTime, Utc};

use crate::catalog::marks::Mark;
use crate::catalog::replay_rate::ReplayRate;
use crate::catalog::segments::{Gap, ListedSegment, SegmentEntry};
use crate::catalog::{Catalog, Listed};
use crate::error::{PgdrError, Result};
use crate::restore::replay::Stop;
use crate::source::Lsn;

/// The point asked for (`--at`, `--at-lsn`, `--at-mark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointSpec {
    Time(DateTime<Utc>),
    Lsn(Lsn),
    Mark(String),
    Latest,
}

/// An anchored backup, as the plan weighs it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Anchor {
    pub id: String,
    pub cut: Lsn,
    pub time: DateTime<Utc>,
}

/// The changes the repository holds, from the oldest anchor's cut to the newest segment's end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Window {
    pub from: Lsn,
    pub from_time: DateTime<Utc>,
    pub to: Lsn,
    /// The newest stored commit's time.
    pub to_time: Option<DateTime<Utc>>,
}

/// What a point-in-time restore will do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointPlan {
    /// The point as asked (`mark pre-migration at 0/1A2B3C8`).
    pub point: String,
    pub anchor: Anchor,
    #[serde(skip)]
    pub stop: Stop,
    /// The segments to read, oldest first.
    #[serde(skip)]
    pub segments: Vec<SegmentEntry>,
    pub segment_starts: Vec<Lsn>,
    /// Transactions in those segments from the cut on (all of them apply for `latest`; the
    /// stop rule may leave some of the last segment out otherwise).
    pub transactions_at_most: u64,
    /// Rows (inserts, updates, deletes) in those transactions; None when a segment entry was
    /// written before pgdr counted rows.
    pub rows_at_most: Option<u64>,
    /// The newest measured replay (a restore's or a drill's); None: no replay recorded yet.
    pub replay_rate: Option<ReplayRate>,
    /// Rows (else transactions) at most, at the recorded rate.
    pub estimated_replay_seconds: Option<f64>,
    pub window: Window,
}

impl PointPlan {
    /// Attach the recorded rate and the estimate it gives.
    fn with_rate(mut self, rate: Option<ReplayRate>) -> PointPlan {
        self.estimated_replay_seconds = rate.as_ref().and_then(|r| match self.rows_at_most {
            Some(rows) if r.rows_per_second > 0.0 => Some(rows as f64 / r.rows_per_second),
            _ if r.transactions_per_second > 0.0 => {
                Some(self.transactions_at_most as f64 / r.transactions_per_second)
            }
            _ => None,
        });
        self.replay_rate = rate;
        self
    }
}

/// Resolve the point against the repository: refuses (with the window and the nearest
/// reachable points) what cannot be reached.
pub async fn plan(catalog: &Catalog, database: &str, spec: &PointSpec) -> Result<PointPlan> {
    let inputs = inputs(catalog, database).await?;
    let (target, described) = match spec {
        PointSpec::Mark(name) => {
            let (m, signature) = mark(catalog, database, name).await?;
            let lsn = m.lsn.expect("checked");
            (
                Target::Lsn(lsn),
                format!("mark {name} at {lsn} ({signature})"),
            )
        }
        PointSpec::Lsn(l) => (Target::Lsn(*l), format!("LSN {l}")),
        PointSpec::Time(t) => (Target::Time(*t), format!("time {}", t.to_rfc3339())),
        PointSpec::Latest => (Target::End, "latest".to_string()),
    };
    let plan = inputs.choose(&described, target)?;
    // Planted segments would be replayed onto the restored copy: signed ones only.
    catalog
        .authenticate_segments(database, &plan.segment_starts)
        .await?;
    Ok(plan.with_rate(catalog.last_replay_rate(database).await?))
}

/// What the repository holds to plan points of one database: anchors, segments, gaps.
pub struct Inputs {
    anchors: Vec<Anchor>,
    segments: Vec<SegmentEntry>,
    gaps: Vec<Gap>,
}

impl Inputs {
    /// The covered window (None: no stored changes reach back to an anchor).
    pub fn window(&self) -> Option<Window> {
        choose::window(&self.anchors, &self.segments)
    }

    /// The plan of one point, or why it cannot be reached.
    pub fn choose(&self, described: &str, target: Target) -> Result<PointPlan> {
        choose(described, target, &self.anchors, &self.segments, &self.gaps)
    }
}

/// Read the inputs; a database without change capture is refused by name.
pub async fn inputs(catalog: &Catalog, database: &str) -> Result<Inputs> {
    if catalog.capture_state(database).await?.is_none() {
        return Err(PgdrError::usage(format!(
            "database '{database}' has no change capture: there are no changes to replay to a point"
        ))
        .hint("restore a backup with --before TIME (or an id), or enable capture for the future: `pgdr capture enable`"));
    }
    Ok(Inputs {
        anchors: anchors(catalog, database).await?,
        segments: readable_segments(catalog.segments(database).await?)?,
        gaps: catalog.gaps(database).await?,
    })
}

/// The recorded replay rate and the estimate it gives, for a plan made elsewhere.
pub async fn with_recorded_rate(
    catalog: &Catalog,
    database: &str,
    p: PointPlan,
) -> Result<PointPlan> {
    Ok(p.with_rate(catalog.last_replay_rate(database).await?))
}

/// The mark and how its signature stands (a planted mark is refused like a planted segment).
async fn mark(catalog: &Catalog, database: &str, name: &str) -> Result<(Mark, String)> {
    let (m, signature) = catalog
        .authenticated_mark(database, name)
        .await?
        .ok_or_else(|| {
            PgdrError::not_found(format!("database '{database}' has no mark '{name}'"))
                .hint("`pgdr list` shows the marks")
        })?;
    if m.lsn.is_none() {
        return Err(PgdrError::usage(format!(
            "mark '{name}' of database '{database}' has no LSN: `pgdr mark` did not finish writing it, so it names no point"
        ))
        .hint("restore to a time or an LSN instead"));
    }
    Ok((m, signature))
}

async fn anchors(catalog: &Catalog, database: &str) -> Result<Vec<Anchor>> {
    let mut out: Vec<Anchor> = catalog
        .list(Some(database))
        .await?
        .into_iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => Some(Anchor {
                id: e.manifest.id.to_string(),
                cut: e.manifest.snapshot.cut_lsn?,
                time: e.manifest.snapshot.time,
            }),
            Listed::Damaged { .. } => None,
        })
        .collect();
    out.sort_by_key(|a| a.cut);
    Ok(out)
}

fn readable_segments(listed: Vec<ListedSegment>) -> Result<Vec<SegmentEntry>> {
    listed
        .into_iter()
        .map(|s| match s {
            ListedSegment::Ok(e) => Ok(*e),
            ListedSegment::Damaged { start, error } => Err(PgdrError::corrupt(format!(
                "the entry of the segment at {start} cannot be read: {error}"
            ))
            .hint("run `pgdr capture check`")),
        })
        .collect()
}

/// The point, in the terms the choice needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Lsn(Lsn),
    Time(DateTime<Utc>),
    End,
}

mod choose;
pub mod run;
pub(crate) use choose::choose;
