//! `pgdr daemon`: runs the scheduled jobs of every configured database (backup with a
//! verification after it, drill, prune), records each run in the repository, counts it in
//! the metrics and notifies the webhooks.
//!
//! - The same job of the same database never runs twice at once: within a daemon a job whose
//!   previous run is still going is skipped; across daemons, see [`SourceLock`] (backups) and
//!   [`Lease`] (drills and prune, in `catalog::leases`). A daemon that finds the run of a slot already done by
//!   another daemon skips it too.
//! - A job missed while the daemon was down (its last success older than its period) runs
//!   once at start-up, unless `catch_up = false`.
//! - On SIGTERM/SIGINT nothing new starts; running jobs get `grace_period` to finish, then
//!   are cancelled: pg_dump is ended, a multipart upload aborted, a scratch cluster removed,
//!   and nothing partial stays visible. The daemon then exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::records::{self, Outcome};
use crate::catalog::{Catalog, Lease, Listed, Manifest};
use crate::commands::{backup, drill, prune, verify};
use crate::config::ops::{DatabaseOps, JobKind, JobSchedule, VerifyAfter};
use crate::config::{Database, Settings};
use crate::error::{Kind, PgdrError, Result};
use crate::progress::human_bytes;
use crate::schedule::state::{self, JobRun, JobState, RunOutcome};
use crate::source;
use crate::telemetry::events::{
    BackupCommitted, DrillFinished, JobFailed, JobScheduled, JobSkipped, JobStarted, JobSucceeded,
    VerificationFinished,
};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::{self, Health, TICK_SECONDS};
use crate::telemetry::webhook::{Notification, Notifier};

pub struct DaemonOptions {
    pub database: Option<String>,
}

/// Everything a job run needs, shared.
struct Ctx {
    settings: Arc<Settings>,
    catalog: Catalog,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    /// `host:pid:random`: who holds a lease.
    owner: String,
}

/// Why a run starts.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Its cron time came.
    Scheduled { due: DateTime<Utc> },
    /// It was missed while no daemon ran.
    CatchUp { not_before: DateTime<Utc> },
}

impl Trigger {
    /// A success at or after this moment means the run is already done (by another daemon).
    fn not_before(self) -> DateTime<Utc> {
        match self {
            Trigger::Scheduled { due } => due,
            Trigger::CatchUp { not_before } => not_before,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Trigger::Scheduled { .. } => "schedule",
            Trigger::CatchUp { .. } => "catch-up",
        }
    }
}

enum JobResult {
    Done(String),
    Skipped(String),
    /// The job label the failure counts under ("verify" when the backup's verification
    /// failed) and the error.
    Failed(&'static str, String),
    Cancelled,
}

struct Slot {
    job: JobSchedule,
    ops: DatabaseOps,
    /// The cron time of the next run, and when it starts (plus jitter).
    due: DateTime<Utc>,
    start_at: DateTime<Utc>,
    running: Arc<AtomicBool>,
}

impl Slot {
    fn plan_next(&mut self, after: DateTime<Utc>, metrics: &Metrics) {
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

pub async fn run(
    settings: Settings,
    opts: &DaemonOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    crate::scratch::sweep_orphans(&settings.scratch).await;
    let settings = Arc::new(settings);
    let databases: Vec<String> = settings
        .select(opts.database.as_deref())?
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let mut slots = Vec::new();
    for name in &databases {
        let ops = settings.ops.database(name);
        let needs_identity = ops.verify_after != VerifyAfter::Off
            || ops.jobs.iter().any(|j| j.kind == JobKind::Drill);
        if needs_identity && settings.identity.is_none() {
            return Err(PgdrError::config(format!(
                "database '{name}': scheduled verifications and drills need the age identity"
            ))
            .hint("set [encryption] identity (or PGDR_IDENTITY), or set verify = \"off\" and drill = \"off\" in [schedule] on a host that must not hold the key"));
        }
        for job in &ops.jobs {
            slots.push(Slot {
                job: job.clone(),
                ops: ops.clone(),
                due: Utc::now(),
                start_at: Utc::now(),
                running: Arc::new(AtomicBool::new(false)),
            });
        }
    }
    if slots.is_empty() {
        return Err(
            PgdrError::config("nothing to schedule: every job is \"off\"")
                .hint("set backup = \"0 2 * * *\" (or another cron expression) in [schedule]"),
        );
    }
    crate::codec::parse_recipients(&settings.recipients)?;
    let catalog = Catalog::open(&settings).await?;
    catalog.check_writable().await?;

    let metrics = Arc::new(Metrics::new());
    metrics
        .start_time
        .set(crate::telemetry::metrics::unix(Utc::now()));
    let health = Arc::new(Health::default());
    health.tick();
    let ctx = Arc::new(Ctx {
        catalog,
        notifier: Notifier::new(settings.ops.webhooks.clone(), metrics.clone()),
        metrics: metrics.clone(),
        owner: format!(
            "{}:{}:{:08x}",
            records::hostname(),
            std::process::id(),
            fastrand::u32(..)
        ),
        settings: settings.clone(),
    });
    for name in &databases {
        seed_metrics(&ctx, name).await;
    }

    let jobs_cancel = CancellationToken::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let now = Utc::now();
    for slot in slots.iter_mut() {
        slot.plan_next(now, &metrics);
        if slot.ops.catch_up {
            if let Some(not_before) = missed(&ctx, slot, now).await {
                start(
                    &ctx,
                    slot,
                    Trigger::CatchUp { not_before },
                    &mut tasks,
                    &jobs_cancel,
                );
            }
        }
    }
    // Served once seeded and planned: a scrape never sees a daemon without its next runs.
    let server_stop = CancellationToken::new();
    let server = match settings.ops.metrics_listen {
        Some(addr) => {
            Some(server::serve(addr, metrics.clone(), health.clone(), server_stop.clone()).await?)
        }
        None => None,
    };
    tracing::info!(
        databases = databases.len(),
        jobs = slots.len(),
        "daemon started"
    );

    loop {
        health.tick();
        let now = Utc::now();
        for slot in slots.iter_mut() {
            if slot.start_at <= now {
                let due = slot.due;
                start(
                    &ctx,
                    slot,
                    Trigger::Scheduled { due },
                    &mut tasks,
                    &jobs_cancel,
                );
                slot.plan_next(due.max(now), &metrics);
            }
        }
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r {
                tracing::error!(error = %e, "a job task ended abnormally");
            }
        }
        let next = slots.iter().map(|s| s.start_at).min().expect("slots");
        let wait = (next - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(TICK_SECONDS as u64));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }

    let grace = settings.ops.grace_period;
    if !tasks.is_empty() {
        tracing::warn!(
            running = tasks.len(),
            grace_seconds = grace.as_secs_f64(),
            "shutting down: starting nothing new; waiting for running jobs"
        );
    }
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            running = tasks.len(),
            "grace period over: cancelling running jobs (pg_dump ended, uploads aborted, scratch removed)"
        );
        jobs_cancel.cancel();
        let cleaned = tokio::time::timeout(Duration::from_secs(120), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if cleaned.is_err() {
            tracing::error!("jobs did not stop within 120s of being cancelled; exiting anyway");
            tasks.abort_all();
        }
    }
    server_stop.cancel();
    if let Some((_, t)) = server {
        let _ = t.await;
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// Start a run unless the previous one is still going.
fn start(
    ctx: &Arc<Ctx>,
    slot: &Slot,
    trigger: Trigger,
    tasks: &mut JoinSet<()>,
    jobs_cancel: &CancellationToken,
) {
    let job = slot.job.kind;
    if slot.running.swap(true, Ordering::SeqCst) {
        JobSkipped {
            database: &slot.job.database,
            job: job.as_str(),
            reason: "the previous run is still going",
        }
        .emit(&ctx.metrics);
        return;
    }
    let (ctx, running, ops) = (ctx.clone(), slot.running.clone(), slot.ops.clone());
    let database = slot.job.database.clone();
    let cancel = jobs_cancel.child_token();
    tasks.spawn(async move {
        run_job(&ctx, &database, job, &ops, trigger, cancel).await;
        running.store(false, Ordering::SeqCst);
    });
}

/// The start of the period that should hold a success, if the job has none in it.
async fn missed(ctx: &Ctx, slot: &Slot, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
async fn last_success(ctx: &Ctx, database: &str, job: JobKind) -> Option<DateTime<Utc>> {
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
        JobKind::Prune => None,
    };
    recorded.max(seen)
}

async fn run_job(
    ctx: &Ctx,
    database: &str,
    job: JobKind,
    ops: &DatabaseOps,
    trigger: Trigger,
    cancel: CancellationToken,
) {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let result = match job {
        JobKind::Backup => backup_job(ctx, database, ops, trigger, cancel).await,
        JobKind::Drill => drill_job(ctx, database, ops, trigger, cancel).await,
        JobKind::Prune => prune_job(ctx, database, trigger, cancel).await,
    };
    let finished_at = Utc::now();
    let seconds = t0.elapsed().as_secs_f64();
    let (outcome, error, summary, label) = match result {
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
            return;
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
            (RunOutcome::Succeeded, None, Some(summary), job.as_str())
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
            (RunOutcome::Failed, Some(error), None, label)
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
            (RunOutcome::Cancelled, None, None, job.as_str())
        }
    };
    // Remember the run in the repository (the only state), then tell the webhooks.
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
    if outcome != RunOutcome::Cancelled && !ctx.notifier.is_empty() {
        ctx.notifier
            .notify(&Notification {
                source: "pgdr",
                database: database.to_string(),
                job: label.to_string(),
                outcome: if outcome == RunOutcome::Failed {
                    "failed"
                } else {
                    "succeeded"
                },
                error,
                summary,
                started_at,
                finished_at,
                duration_seconds: seconds,
                host: records::hostname(),
            })
            .await;
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
    let mut summary = format!("backup {}, {} stored", manifest.id, human_bytes(stored));
    if ops.verify_after == VerifyAfter::Off || cancel.is_cancelled() {
        return JobResult::Done(summary);
    }
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
async fn start_leased(
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

/// Metrics that reflect the repository from the first scrape on, not only what this daemon
/// did since it started.
async fn seed_metrics(ctx: &Ctx, name: &str) {
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

/// How long a cancelled job gets to clean up after itself (discard what it wrote) before it
/// is dropped.
const CANCEL_CLEANUP: Duration = Duration::from_secs(10);

/// Resolves `wait` after `cancel` fires.
async fn after_cancel(cancel: &CancellationToken, wait: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(wait).await;
}

// ---------------------------------------------------------------------------------------------
// Exclusion across daemons.

/// `pgdr` in ASCII: the advisory-lock class of every pgdr lock.
const LOCK_CLASS: i32 = 0x7067_6472;

/// A session-level PostgreSQL advisory lock on the source database, held on its own
/// connection for the duration of a backup, so that several daemons pointed at the same
/// database run one backup between them.
///
/// Why the source, and why an advisory lock: the source is the one thing every daemon backing
/// up this database shares (their hosts, clocks and even repositories may differ), and a
/// session lock dies with its session. A daemon that crashes, is killed or loses its network
/// cannot leave a stale lock behind, which a lock file or a lock object would (they need an
/// expiry, and a clock to trust). Advisory locks conflict only with advisory locks, so the
/// backup itself (snapshot, pg_dump's table locks) is not affected. They are scoped to the
/// database, so different databases on one server do not block each other.
pub struct SourceLock {
    client: tokio_postgres::Client,
    job: i32,
}

impl SourceLock {
    /// `Ok(None)`: another session holds it.
    pub async fn try_acquire(db: &Database, job: JobKind) -> Result<Option<SourceLock>> {
        // The session names its holder, so that a refused run can say who holds the lock.
        let mut named = db.clone();
        named.conn.application_name(format!(
            "pgdr {job} lock: host {} pid {}",
            records::hostname(),
            std::process::id()
        ));
        let client = source::connect(&named).await?;
        let code = job as i32 + 1;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &code])
            .await
            .map_err(|e| {
                PgdrError::database(format!(
                    "database '{}': taking the backup lock: {e}",
                    db.name
                ))
            })?
            .get(0);
        Ok(got.then_some(SourceLock { client, job: code }))
    }

    /// Who holds the lock: "pgdr backup lock: host H pid P, for 12s" (from the holder's
    /// session), for a refusal that names it.
    pub async fn holder(db: &Database, job: JobKind) -> String {
        let code = job as i32 + 1;
        let found = async {
            let c = source::connect(db).await.ok()?;
            let row = c
                .query_opt(
                    "SELECT COALESCE(NULLIF(a.application_name, ''), 'pid ' || a.pid),
                            extract(epoch FROM now() - a.backend_start)::float8
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'advisory' AND l.granted
                        AND l.classid::bigint = $1::bigint AND l.objid::bigint = $2::bigint
                        AND l.objsubid = 2
                      LIMIT 1",
                    &[&(LOCK_CLASS as i64), &(code as i64)],
                )
                .await
                .ok()??;
            let who: String = row.get(0);
            let secs: f64 = row.get(1);
            Some(format!(
                "{who}, for {}",
                crate::progress::human_duration(secs)
            ))
        }
        .await;
        found.unwrap_or_else(|| "another session (it could not be named)".into())
    }

    /// Unlock and end the session (ending it alone would release the lock too).
    pub async fn release(self) {
        let _ = self
            .client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&LOCK_CLASS, &self.job],
            )
            .await;
    }
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
