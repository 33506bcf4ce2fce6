//! When each job runs next: its cron time plus jitter, whether it was missed while no daemon
//! ran, and the metrics seeded from the repository at start-up.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::Listed;
use crate::config::ops::{DatabaseOps, JobKind, JobSchedule};
use crate::schedule::state;
use crate::telemetry::events::{
    BackupCommitted, DrillFinished, JobScheduled, VerificationFinished,
};
use crate::telemetry::metrics::Metrics;

use super::Ctx;

pub(super) struct Slot {
    pub(super) job: JobSchedule,
    pub(super) ops: DatabaseOps,
    /// The cron time of the next run, and when it starts (plus jitter).
    pub(super) due: DateTime<Utc>,
    pub(super) start_at: DateTime<Utc>,
    pub(super) running: Arc<AtomicBool>,
}

impl Slot {
    pub(super) fn plan_next(&mut self, after: DateTime<Utc>, metrics: &Metrics) {
        let due = self
            .job
            .schedule
            .next_after(after)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let jitter = match self.job.jitter.as_millis() as u64 {
            0 => 0,
            ms => fastrand::u64(0..=ms),
        };
        self.due = due;
        self.start_at = due + chrono::Duration::milliseconds(jitter as i64);
        JobScheduled {
            database: &self.job.database,
            job: self.job.kind.as_str(),
            at: self.start_at,
        }
        .emit(metrics);
    }
}

/// The start of the period that should hold a success, if the job has none in it.
pub(super) async fn missed(ctx: &Ctx, slot: &Slot, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let period = slot.job.schedule.period_at(now)?;
    let not_before = now - period;
    match last_success(ctx, &slot.job.database, slot.job.kind).await {
        Some(t) if t >= not_before => None,
        last => {
            tracing::info!(
                database = %slot.job.database,
                job = %slot.job.kind,
                last_success = ?last,
                "missed while no daemon ran: running it now"
            );
            Some(not_before)
        }
    }
}

/// When the job last succeeded, as the repository shows it.
pub(super) async fn last_success(ctx: &Ctx, database: &str, job: JobKind) -> Option<DateTime<Utc>> {
    let recorded = state::load(&ctx.catalog, database, job)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.last_success);
    let seen = match job {
        JobKind::Backup => ctx
            .catalog
            .latest(database)
            .await
            .ok()
            .map(|m| m.started_at),
        JobKind::Drill => ctx
            .catalog
            .drills(Some(database))
            .await
            .ok()
            .and_then(|d| d.last().map(|r| r.started_at)),
        JobKind::Prune | JobKind::ChainProof => None,
    };
    recorded.max(seen)
}

/// Metrics that reflect the repository from the first scrape on, not only what this daemon
/// did since it started.
pub(super) async fn seed_metrics(ctx: &Ctx, name: &str) {
    let m = &ctx.metrics;
    if let Ok(listed) = ctx.catalog.list(Some(name)).await {
        if let Some(e) = listed.iter().rev().find_map(|l| match l {
            Listed::Ok(e) => Some(e),
            _ => None,
        }) {
            let mf = &e.manifest;
            BackupCommitted {
                database: name,
                id: mf.id.as_str(),
                snapshot: mf.snapshot.time,
                finished_at: mf.finished_at,
                duration_seconds: mf.duration_seconds(),
                stored_bytes: mf.objects.iter().map(|o| o.stored_bytes).sum(),
            }
            .count(m);
        }
        if let Some(v) = listed
            .iter()
            .filter_map(|l| match l {
                Listed::Ok(e) => e.verification.as_ref(),
                _ => None,
            })
            .max_by_key(|v| v.finished_at)
        {
            VerificationFinished {
                database: name,
                backup_id: v.backup_id.as_str(),
                mode: v.mode,
                outcome: v.outcome,
                finished_at: v.finished_at,
                differences: v.differences.len(),
            }
            .count(m);
        }
    }
    if let Ok(drills) = ctx.catalog.drills(Some(name)).await {
        if let Some(d) = drills.last() {
            DrillFinished {
                database: name,
                outcome: d.outcome,
                finished_at: d.finished_at,
                rto_seconds: d.rto_seconds,
                rpo_seconds: d.rpo_seconds,
                rto_target_seconds: d.targets.rto_seconds,
                rpo_target_seconds: d.targets.rpo_seconds,
                failures: &d.failures,
            }
            .count(m);
        }
    }
    for job in JobKind::ALL {
        if let Ok(Some(s)) = state::load(&ctx.catalog, name, job).await {
            if let Some(t) = s.last_success {
                m.job_last_success
                    .with_label_values(&[name, job.as_str()])
                    .set(crate::telemetry::metrics::unix(t));
            }
        }
    }
}
#[cfg(test)]
#[path = "planning_tests.rs"]
mod tests;
