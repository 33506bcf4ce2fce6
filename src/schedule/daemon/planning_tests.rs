//! The daemon's planning on a memory store: no PostgreSQL, no clock but the one passed in.
//! (Its leases are the repository's: `catalog::leases` tests them.)

use std::time::Duration;

use super::*;
use crate::catalog::testkit::{at, settings, Repo};
use crate::catalog::BackupId;
use crate::catalog::Catalog;
use crate::schedule::state::{JobRun, JobState, RunOutcome};
use crate::telemetry::alerts::Alerts;

const CONFIG: &str =
    "[schedule]\nbackup = \"0 2 * * *\"\ndrill = \"0 4 1 * *\"\nprune = \"30 5 * * *\"\n\
                      [[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n";

fn ctx(r: &Repo, owner: &str) -> Ctx {
    let metrics = Arc::new(Metrics::new());
    Ctx {
        settings: Arc::new(settings(CONFIG)),
        catalog: Catalog::new(r.store.clone()),
        notifier: Alerts::new(Vec::new(), &Default::default(), metrics.clone()),
        metrics,
        owner: owner.to_string(),
    }
}

fn slot(ctx: &Ctx, kind: JobKind) -> Slot {
    let ops = ctx.settings.ops.database("app");
    let job = ops
        .jobs
        .iter()
        .find(|j| j.kind == kind)
        .expect("job configured")
        .clone();
    Slot {
        job,
        ops,
        due: DateTime::<Utc>::MIN_UTC,
        start_at: DateTime::<Utc>::MIN_UTC,
        running: Arc::new(AtomicBool::new(false)),
    }
}

#[tokio::test]
async fn the_next_run_is_the_next_cron_time_plus_at_most_the_jitter() {
    let r = Repo::new();
    let c = ctx(&r, "a");
    let mut s = slot(&c, JobKind::Backup);
    s.plan_next(at("2026-03-10T01:59:59Z"), &c.metrics);
    assert_eq!(s.due, at("2026-03-10T02:00:00Z"));
    assert_eq!(s.start_at, s.due, "no jitter configured");
    // At the cron time itself, the next one is a day later.
    s.plan_next(at("2026-03-10T02:00:00Z"), &c.metrics);
    assert_eq!(s.due, at("2026-03-11T02:00:00Z"));
    s.job.jitter = Duration::from_secs(600);
    for _ in 0..50 {
        s.plan_next(at("2026-03-10T12:00:00Z"), &c.metrics);
        assert_eq!(s.due, at("2026-03-11T02:00:00Z"));
        let late = s.start_at - s.due;
        assert!(late >= chrono::Duration::zero() && late <= chrono::Duration::minutes(10));
    }
}

#[tokio::test]
async fn a_job_without_a_success_in_its_last_period_was_missed() {
    let r = Repo::new();
    let c = ctx(&r, "a");
    let backup = slot(&c, JobKind::Backup);
    let now = at("2026-03-10T12:00:00Z");
    let day_ago = now - chrono::Duration::days(1);
    assert_eq!(missed(&c, &backup, now).await, Some(day_ago));
    // A backup older than a day does not count; one within the day does.
    r.backup("app", now - chrono::Duration::hours(30)).await;
    assert_eq!(missed(&c, &backup, now).await, Some(day_ago));
    let id = r.backup("app", now - chrono::Duration::hours(10)).await;
    assert_eq!(missed(&c, &backup, now).await, None);
    assert_eq!(
        last_success(&c, "app", JobKind::Backup).await,
        Some(id.time())
    );
    // Prune leaves no object of its own: only its job record tells.
    let prune = slot(&c, JobKind::Prune);
    assert_eq!(missed(&c, &prune, now).await, Some(day_ago));
    let mut st = JobState::new("app", JobKind::Prune);
    let run = |t: DateTime<Utc>, outcome| JobRun {
        started_at: t,
        finished_at: t,
        outcome,
        error: None,
        summary: None,
        host: "h".into(),
    };
    st.record(run(now - chrono::Duration::hours(2), RunOutcome::Failed));
    state::save(&r.catalog, &st).await.unwrap();
    assert_eq!(
        missed(&c, &prune, now).await,
        Some(day_ago),
        "a failure is no success"
    );
    st.record(run(now - chrono::Duration::hours(6), RunOutcome::Succeeded));
    state::save(&r.catalog, &st).await.unwrap();
    assert_eq!(missed(&c, &prune, now).await, None);
    // The drill's period is a month: a success recorded 20 days ago is in it.
    let drill = slot(&c, JobKind::Drill);
    let mut st = JobState::new("app", JobKind::Drill);
    st.record(run(now - chrono::Duration::days(20), RunOutcome::Succeeded));
    state::save(&r.catalog, &st).await.unwrap();
    assert_eq!(missed(&c, &drill, now).await, None);
    assert!(missed(&c, &drill, now + chrono::Duration::days(15))
        .await
        .is_some());
}

#[tokio::test]
async fn last_success_is_the_newer_of_the_record_and_the_repository() {
    let r = Repo::new();
    let c = ctx(&r, "a");
    let now = at("2026-03-10T12:00:00Z");
    let mut st = JobState::new("app", JobKind::Backup);
    st.record(JobRun {
        started_at: now,
        finished_at: now,
        outcome: RunOutcome::Succeeded,
        error: None,
        summary: None,
        host: "h".into(),
    });
    state::save(&r.catalog, &st).await.unwrap();
    let older: BackupId = r.backup("app", now - chrono::Duration::hours(5)).await;
    assert!(older.time() < now);
    assert_eq!(last_success(&c, "app", JobKind::Backup).await, Some(now));
    let newer = r.backup("app", now + chrono::Duration::hours(1)).await;
    assert_eq!(
        last_success(&c, "app", JobKind::Backup).await,
        Some(newer.time())
    );
}
