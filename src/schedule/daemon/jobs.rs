//! One run of a job (backup with its verification, drill, prune): exclusion, the work, and
//! what is recorded, counted and notified afterwards.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::backup::SourceLock;
use crate::catalog::records::{self, Outcome};
use crate::catalog::{Lease, Manifest};
use crate::config::ops::{DatabaseOps, JobKind, VerifyAfter};
use crate::error::{Kind, PgdrError};
use crate::progress::human_bytes;
use crate::schedule::prune;
use crate::schedule::state::{self, JobRun, JobState, RunOutcome};
use crate::telemetry::events::{
    BackupCommitted, DrillFinished, JobFailed, JobSkipped, JobStarted, JobSucceeded,
    VerificationFinished,
};
use crate::telemetry::webhook::Notification;
use crate::{backup, drill, verify};

use super::chain;
use super::planning::last_success;
use super::{Ctx, JobResult, Trigger};

pub(super) async fn run_job(
    ctx: &Ctx,
    database: &str,
    job: JobKind,
    ops: &DatabaseOps,
    trigger: Trigger,
    cancel: CancellationToken,
) {
    let started_at = Utc::now();
    let t0 = Instant::now();
    ctx.notifier.started(database, job.as_str()).await;
    let result = match job {
        JobKind::Backup => backup_job(ctx, database, ops, trigger, cancel).await,
        JobKind::Drill => drill_job(ctx, database, ops, trigger, cancel).await,
        JobKind::Prune => prune_job(ctx, database, trigger, cancel).await,
        JobKind::ChainProof => chain::chain_job(ctx, database, trigger, cancel).await,
    };
    let finished_at = Utc::now();
    let seconds = t0.elapsed().as_secs_f64();
    let skipped = match &result {
        JobResult::Skipped(why) => Some(format!("skipped: {why}")),
        _ => None,
    };
    let note = |outcome, label: &str, error, summary| Notification {
        source: "pgdr",
        database: database.to_string(),
        job: label.to_string(),
        outcome,
        error,
        summary,
        started_at,
        finished_at,
        duration_seconds: seconds,
        host: records::hostname(),
    };
    let Some((outcome, error, summary, label)) =
        account(ctx, database, job, result, finished_at, seconds)
    else {
        // Close the heartbeat's start: another pgdr did the work, nothing is wrong.
        let n = note("succeeded", job.as_str(), None, skipped);
        ctx.notifier.beat(job.as_str(), &n).await;
        return;
    };
    // Remember the run in the repository (the only state), then tell the world.
    let mut st = match state::load(&ctx.catalog, database, job).await {
        Ok(Some(s)) => s,
        _ => JobState::new(database, job),
    };
    st.record(JobRun {
        started_at,
        finished_at,
        outcome,
        error: error.clone(),
        summary: summary.clone(),
        host: records::hostname(),
    });
    if let Err(e) = state::save(&ctx.catalog, &st).await {
        tracing::warn!(database, job = %job, error = %e, "could not record the job run in the repository");
    }
    match outcome {
        // A shutdown is not news for webhooks or mail, but the heartbeat's start needs an end.
        RunOutcome::Cancelled => {
            let n = note(
                "failed",
                label,
                Some("cancelled by the shutdown".into()),
                None,
            );
            ctx.notifier.beat(job.as_str(), &n).await;
        }
        RunOutcome::Failed => {
            let n = note("failed", label, error, summary);
            ctx.notifier.finished(job.as_str(), &n).await;
        }
        _ => {
            let n = note("succeeded", label, error, summary);
            ctx.notifier.finished(job.as_str(), &n).await;
        }
    }
}

/// What a finished run was, as events and metrics say it; `None` for a skipped run (nothing
/// to record): (outcome, error, summary, the job label it counts under).
fn account(
    ctx: &Ctx,
    database: &str,
    job: JobKind,
    result: JobResult,
    finished_at: DateTime<Utc>,
    seconds: f64,
) -> Option<(RunOutcome, Option<String>, Option<String>, &'static str)> {
    match result {
        JobResult::Skipped(reason) => {
            JobSkipped {
                database,
                job: job.as_str(),
                reason: &reason,
            }
            .emit(&ctx.metrics);
            ctx.metrics
                .job_running
                .with_label_values(&[database, job.as_str()])
                .set(0);
            None
        }
        JobResult::Done(summary) => {
            JobSucceeded {
                database,
                job: job.as_str(),
                finished_at,
                duration_seconds: seconds,
                summary: &summary,
            }
            .emit(&ctx.metrics);
            Some((RunOutcome::Succeeded, None, Some(summary), job.as_str()))
        }
        JobResult::Failed(label, error) => {
            JobFailed {
                database,
                job: label,
                error: &error,
                duration_seconds: seconds,
                cancelled: false,
            }
            .emit(&ctx.metrics);
            if label != job.as_str() {
                ctx.metrics
                    .job_running
                    .with_label_values(&[database, job.as_str()])
                    .set(0);
            }
            Some((RunOutcome::Failed, Some(error), None, label))
        }
        JobResult::Cancelled => {
            JobFailed {
                database,
                job: job.as_str(),
                error: "cancelled",
                duration_seconds: seconds,
                cancelled: true,
            }
            .emit(&ctx.metrics);
            Some((RunOutcome::Cancelled, None, None, job.as_str()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The jobs.

async fn backup_job(
    ctx: &Ctx,
    name: &str,
    ops: &DatabaseOps,
    trigger: Trigger,
    cancel: CancellationToken,
) -> JobResult {
    let Some(db) = ctx.settings.databases.iter().find(|d| d.name == name) else {
        return JobResult::Failed("backup", format!("database '{name}' is not configured"));
    };
    let lock = match SourceLock::try_acquire(db, JobKind::Backup).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return JobResult::Skipped(
                "another pgdr holds the backup lock on the source (its backup is running)".into(),
            )
        }
        Err(e) => return JobResult::Failed("backup", e.to_string()),
    };
    if let Ok(m) = ctx.catalog.latest(name).await {
        if m.started_at >= trigger.not_before() {
            lock.release().await;
            return JobResult::Skipped(format!(
                "already done: backup {} started at {} (by another pgdr)",
                m.id, m.started_at
            ));
        }
    }
    JobStarted {
        database: name,
        job: "backup",
        trigger: trigger.name(),
    }
    .emit(&ctx.metrics);
    let opts = backup::BackupOptions {
        database: Some(name.to_string()),
        show_progress: false,
        // Held here already, around the "already done" check.
        lock_source: false,
        labelling: Default::default(),
    };
    let backup = backup::run(&ctx.settings, &opts, cancel.clone());
    tokio::pin!(backup);
    let result = tokio::select! {
        r = &mut backup => r,
        _ = after_cancel(&cancel, CANCEL_CLEANUP) => {
            // Still going well after the cancel: blocked where the backup does not watch the
            // token (connecting, or reading the catalog behind a lock). Dropping it ends pg_dump
            // (kill on drop), aborts an upload in progress and closes the snapshot session.
            Err(PgdrError::new(Kind::Interrupted, "backup abandoned after the cancel"))
        }
    };
    lock.release().await;
    let manifest: Manifest = match result.map(|mut r| r.results.pop()) {
        Ok(Some((_, Ok(m)))) => m,
        Ok(Some((_, Err(e)))) | Err(e) => {
            return if e.kind == Kind::Interrupted || cancel.is_cancelled() {
                JobResult::Cancelled
            } else {
                JobResult::Failed("backup", e.to_string())
            }
        }
        Ok(None) => return JobResult::Cancelled,
    };
    let stored: u64 = manifest.objects.iter().map(|o| o.stored_bytes).sum();
    BackupCommitted {
        database: name,
        id: manifest.id.as_str(),
        snapshot: manifest.snapshot.time,
        finished_at: manifest.finished_at,
        duration_seconds: manifest.duration_seconds(),
        stored_bytes: stored,
    }
    .emit(&ctx.metrics);
    let summary = format!("backup {}, {} stored", manifest.id, human_bytes(stored));
    if ops.verify_after == VerifyAfter::Off || cancel.is_cancelled() {
        return JobResult::Done(summary);
    }
    verify_backup(ctx, name, ops, &manifest, summary, &cancel).await
}

/// The verification after a committed backup (`verify_after`): its outcome decides the job's.
async fn verify_backup(
    ctx: &Ctx,
    name: &str,
    ops: &DatabaseOps,
    manifest: &Manifest,
    mut summary: String,
    cancel: &CancellationToken,
) -> JobResult {
    let quick = ops.verify_after == VerifyAfter::Quick;
    let vopts = verify::VerifyOptions {
        database: Some(name.to_string()),
        selection: verify::Selection::Id(manifest.id.to_string()),
        quick,
    };
    let recs = tokio::select! {
        r = verify::run(&ctx.settings, &vopts) => r,
        // Dropping the verification removes its scratch cluster.
        _ = cancel.cancelled() => return JobResult::Done(format!("{summary}; verification cancelled by the shutdown")),
    };
    let rec = match recs.map(|mut v| v.pop()) {
        Ok(Some(r)) => r,
        Ok(None) => return JobResult::Failed("verify", "verification returned nothing".into()),
        Err(e) => {
            return JobResult::Failed(
                "verify",
                format!(
                    "backup {} committed, but could not be verified: {e}",
                    manifest.id
                ),
            )
        }
    };
    VerificationFinished {
        database: name,
        backup_id: rec.backup_id.as_str(),
        mode: rec.mode,
        outcome: rec.outcome,
        finished_at: rec.finished_at,
        differences: rec.differences.len(),
    }
    .emit(&ctx.metrics);
    let mode = if quick { "quick" } else { "full" };
    match rec.outcome {
        Outcome::Passed => {
            summary.push_str(&format!(", verified ({mode})"));
            JobResult::Done(summary)
        }
        Outcome::Failed => JobResult::Failed(
            "verify",
            format!(
                "backup {} FAILED verification ({mode}): {}",
                manifest.id,
                rec.differences.join("; ")
            ),
        ),
        Outcome::Error => JobResult::Failed(
            "verify",
            format!(
                "backup {} committed, but could not be verified: {}",
                manifest.id,
                rec.error.unwrap_or_default()
            ),
        ),
    }
}

/// Take the job's lease in the repository, skip a slot another pgdr already ran, and announce
/// the start: what every leased job (drill, prune) does first.
pub(super) async fn start_leased(
    ctx: &Ctx,
    name: &str,
    kind: JobKind,
    trigger: &Trigger,
) -> std::result::Result<Lease, JobResult> {
    let lease = match ctx
        .catalog
        .acquire_lease(name, kind.as_str(), &ctx.owner)
        .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(holder)) => return Err(JobResult::Skipped(holder)),
        Err(e) => return Err(JobResult::Failed(kind.as_str(), e.to_string())),
    };
    if let Some(t) = last_success(ctx, name, kind).await {
        if t >= trigger.not_before() {
            lease.release().await;
            return Err(JobResult::Skipped(format!(
                "already done at {t} (by another pgdr)"
            )));
        }
    }
    JobStarted {
        database: name,
        job: kind.as_str(),
        trigger: trigger.name(),
    }
    .emit(&ctx.metrics);
    Ok(lease)
}

async fn drill_job(
    ctx: &Ctx,
    name: &str,
    ops: &DatabaseOps,
    trigger: Trigger,
    cancel: CancellationToken,
) -> JobResult {
    let lease = match start_leased(ctx, name, JobKind::Drill, &trigger).await {
        Ok(l) => l,
        Err(skipped_or_failed) => return skipped_or_failed,
    };
    let opts = drill::DrillOptions {
        database: Some(name.to_string()),
        backup: None,
        drill: ops.drill_file.clone(),
    };
    let r = tokio::select! {
        r = drill::run(&ctx.settings, &opts) => r,
        // Dropping the drill removes its scratch cluster.
        _ = cancel.cancelled() => {
            lease.release().await;
            return JobResult::Cancelled;
        }
    };
    lease.release().await;
    let run = match r.map(|mut v| v.pop()) {
        Ok(Some(run)) => run,
        Ok(None) => return JobResult::Failed("drill", "the drill ran nothing".into()),
        Err(e) => return JobResult::Failed("drill", e.to_string()),
    };
    let rec = &run.record;
    DrillFinished {
        database: name,
        outcome: rec.outcome,
        finished_at: rec.finished_at,
        rto_seconds: rec.rto_seconds,
        rpo_seconds: rec.rpo_seconds,
        rto_target_seconds: rec.targets.rto_seconds,
        rpo_target_seconds: rec.targets.rpo_seconds,
        failures: &rec.failures,
    }
    .emit(&ctx.metrics);
    match rec.outcome {
        Outcome::Passed => JobResult::Done(format!(
            "drill passed: RTO {:.0}s, RPO {:.0}s",
            rec.rto_seconds.unwrap_or(0.0),
            rec.rpo_seconds.unwrap_or(0.0)
        )),
        Outcome::Failed => JobResult::Failed(
            "drill",
            format!("drill failed: {}", rec.failures.join("; ")),
        ),
        Outcome::Error => JobResult::Failed(
            "drill",
            format!(
                "drill could not run: {}",
                rec.error.clone().unwrap_or_default()
            ),
        ),
    }
}

async fn prune_job(
    ctx: &Ctx,
    name: &str,
    trigger: Trigger,
    cancel: CancellationToken,
) -> JobResult {
    let lease = match start_leased(ctx, name, JobKind::Prune, &trigger).await {
        Ok(l) => l,
        Err(skipped_or_failed) => return skipped_or_failed,
    };
    let opts = prune::PruneOptions {
        database: Some(name.to_string()),
        dry_run: false,
    };
    let r = tokio::select! {
        r = prune::run(&ctx.settings, &opts, Utc::now()) => r,
        _ = cancel.cancelled() => {
            lease.release().await;
            return JobResult::Cancelled;
        }
    };
    lease.release().await;
    match r {
        Ok((plan, Some(done))) => {
            if !done.errors.is_empty() {
                return JobResult::Failed("prune", done.errors.join("; "));
            }
            let hold = plan
                .databases
                .iter()
                .find_map(|d| d.hold.clone())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            JobResult::Done(format!(
                "deleted {} backup(s), {} leftover(s), {} uncommitted folder(s), {} record(s){hold}",
                done.deleted_backups, done.removed_leftovers, done.removed_orphans, done.removed_records
            ))
        }
        Ok((_, None)) => JobResult::Done("nothing done".into()),
        Err(e) => JobResult::Failed("prune", e.to_string()),
    }
}

/// How long a cancelled job gets to clean up after itself (discard what it wrote) before it
/// is dropped.
const CANCEL_CLEANUP: Duration = Duration::from_secs(10);

/// Resolves `wait` after `cancel` fires.
async fn after_cancel(cancel: &CancellationToken, wait: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(wait).await;
}

// ---------------------------------------------------------------------------------------------
