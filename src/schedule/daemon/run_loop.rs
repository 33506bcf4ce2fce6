//! The daemon's loop: plan every slot, start what is due, and on shutdown give running
//! jobs their grace period before cancelling them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::records::{self};
use crate::catalog::Catalog;
use crate::config::ops::{JobKind, VerifyAfter};
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::telemetry::alerts::Alerts;
use crate::telemetry::events::JobSkipped;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::{self, Health, TICK_SECONDS};

use super::jobs::run_job;
use super::planning::{missed, seed_metrics, Slot};
use super::{Ctx, DaemonOptions, Trigger};

/// Run the schedule until `shutdown`, then let running jobs finish (or cancel them).
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
    let mut slots = plan_slots(&settings, &databases)?;
    crate::codec::parse_recipients(&settings.recipients)?;
    let catalog = Catalog::open(&settings).await?;
    catalog.check_writable().await?;
    let capturing = something_to_run(&settings, &catalog, &databases, slots.len()).await?;

    let metrics = Arc::new(Metrics::new());
    metrics
        .start_time
        .set(crate::telemetry::metrics::unix(Utc::now()));
    let health = Arc::new(Health::default());
    health.tick();
    let ctx = Arc::new(Ctx {
        catalog,
        notifier: Alerts::for_settings(&settings, metrics.clone()),
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
    let mut captures = super::capture::spawn(&ctx, &databases, &shutdown);
    plan_first_runs(&ctx, &mut slots, &mut tasks, &jobs_cancel).await;
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
        capturing,
        "daemon started"
    );

    run_slots(
        &ctx,
        &mut slots,
        &mut tasks,
        &jobs_cancel,
        &health,
        &shutdown,
    )
    .await;

    drain(&mut tasks, settings.ops.grace_period, &jobs_cancel).await;
    // At least 10 s: committing the open segment takes one upload, even with grace_period 0.
    let capture_grace = settings.ops.grace_period.max(Duration::from_secs(10));
    super::capture::stop(&mut captures, capture_grace).await;
    server_stop.cancel();
    if let Some((_, t)) = server {
        let _ = t.await;
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// One slot per scheduled job of each database; refused when nothing is scheduled, or when
/// verifications or drills are scheduled without the identity they need.
fn plan_slots(settings: &Settings, databases: &[String]) -> Result<Vec<Slot>> {
    let mut slots = Vec::new();
    for name in databases {
        let ops = settings.ops.database(name);
        let needs_identity = ops.verify_after != VerifyAfter::Off
            || ops.jobs.iter().any(|j| j.kind == JobKind::Drill);
        if needs_identity && settings.identities.is_empty() {
            return Err(PgdrError::config(format!(
                "database '{name}': scheduled verifications and drills need the age identity"
            ))
            .hint("set [encryption] identity (or PGDR_IDENTITY), or set verify = \"off\" and drill = \"off\" in [schedule] on a host that must not hold the key"));
        }
        for job in &ops.jobs {
            // Scheduled by default, so a host without the key (verify and drill off) still
            // starts: the chain proof is left out there, and said so.
            if job.kind == JobKind::ChainProof && settings.identities.is_empty() {
                tracing::warn!(database = %name, "no age identity: the chain proof is not scheduled on this host");
                continue;
            }
            slots.push(Slot {
                job: job.clone(),
                ops: ops.clone(),
                due: Utc::now(),
                start_at: Utc::now(),
                running: Arc::new(AtomicBool::new(false)),
            });
        }
    }
    Ok(slots)
}

/// How many of the databases this daemon captures (the repository says enabled, the config
/// does not keep it out); refused when that and the schedule are both nothing.
async fn something_to_run(
    settings: &Settings,
    catalog: &Catalog,
    databases: &[String],
    slots: usize,
) -> Result<usize> {
    let mut n = 0;
    for name in databases {
        let allowed = settings
            .databases
            .iter()
            .any(|d| &d.name == name && d.capture.enabled != Some(false));
        if allowed
            && catalog
                .capture_state(name)
                .await?
                .is_some_and(|s| s.enabled())
        {
            n += 1;
        }
    }
    if slots == 0 && n == 0 {
        return Err(PgdrError::config(
            "nothing to run: every job is \"off\" and no database has capture enabled",
        )
        .hint("set backup = \"0 2 * * *\" (or another cron expression) in [schedule], or run `pgdr capture enable`"));
    }
    Ok(n)
}

/// Plan every slot's next run, and start at once a job missed while no daemon ran (unless
/// `catch_up = false`).
async fn plan_first_runs(
    ctx: &Arc<Ctx>,
    slots: &mut [Slot],
    tasks: &mut JoinSet<()>,
    jobs_cancel: &CancellationToken,
) {
    let metrics = &ctx.metrics;
    let now = Utc::now();
    for slot in slots.iter_mut() {
        slot.plan_next(now, metrics);
        if slot.ops.catch_up {
            if let Some(not_before) = missed(ctx, slot, now).await {
                start(
                    ctx,
                    slot,
                    Trigger::CatchUp { not_before },
                    tasks,
                    jobs_cancel,
                );
            }
        }
    }
}

/// Start each slot when its time comes, until the shutdown.
async fn run_slots(
    ctx: &Arc<Ctx>,
    slots: &mut [Slot],
    tasks: &mut JoinSet<()>,
    jobs_cancel: &CancellationToken,
    health: &Health,
    shutdown: &CancellationToken,
) {
    let metrics = &ctx.metrics;
    loop {
        health.tick();
        let now = Utc::now();
        for slot in slots.iter_mut() {
            if slot.start_at <= now {
                let due = slot.due;
                start(ctx, slot, Trigger::Scheduled { due }, tasks, jobs_cancel);
                slot.plan_next(due.max(now), metrics);
            }
        }
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r {
                tracing::error!(error = %e, "a job task ended abnormally");
            }
        }
        let tick = Duration::from_secs(TICK_SECONDS as u64);
        let wait = slots.iter().map(|s| s.start_at).min().map_or(tick, |next| {
            (next - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(tick)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// On shutdown: running jobs get the grace period, then are cancelled (and get 120 s more to
/// clean up before they are aborted).
async fn drain(tasks: &mut JoinSet<()>, grace: Duration, jobs_cancel: &CancellationToken) {
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
