//! The daemon's planning and leases on a memory store: no PostgreSQL, no clock but the one
//! passed in (leases excepted: they read the real clock, so stale ones are written stale).

use super::*;
use crate::catalog::BackupId;
use crate::testkit::{at, settings, Repo};

const CONFIG: &str =
    "[schedule]\nbackup = \"0 2 * * *\"\ndrill = \"0 4 1 * *\"\nprune = \"30 5 * * *\"\n\
                      [[database]]\nname = \"app\"\nurl = \"postgres://u@h/app\"\n";

fn ctx(r: &Repo, owner: &str) -> Ctx {
    let metrics = Arc::new(Metrics::new());
    Ctx {
        settings: Arc::new(settings(CONFIG)),
        catalog: Catalog::new(r.store.clone()),
        notifier: Notifier::new(Vec::new(), metrics.clone()),
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
    state::save(r.store.as_ref(), &st).await.unwrap();
    assert_eq!(
        missed(&c, &prune, now).await,
        Some(day_ago),
        "a failure is no success"
    );
    st.record(run(now - chrono::Duration::hours(6), RunOutcome::Succeeded));
    state::save(r.store.as_ref(), &st).await.unwrap();
    assert_eq!(missed(&c, &prune, now).await, None);
    // The drill's period is a month: a success recorded 20 days ago is in it.
    let drill = slot(&c, JobKind::Drill);
    let mut st = JobState::new("app", JobKind::Drill);
    st.record(run(now - chrono::Duration::days(20), RunOutcome::Succeeded));
    state::save(r.store.as_ref(), &st).await.unwrap();
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
    state::save(r.store.as_ref(), &st).await.unwrap();
    let older: BackupId = r.backup("app", now - chrono::Duration::hours(5)).await;
    assert!(older.time() < now);
    assert_eq!(last_success(&c, "app", JobKind::Backup).await, Some(now));
    let newer = r.backup("app", now + chrono::Duration::hours(1)).await;
    assert_eq!(
        last_success(&c, "app", JobKind::Backup).await,
        Some(newer.time())
    );
}

const LEASE: &str = "app/jobs/prune.lease";

#[tokio::test]
async fn a_lease_is_refused_while_fresh_taken_over_when_stale_and_released_by_its_owner() {
    let r = Repo::new();
    let (a, b) = (ctx(&r, "host-a:1:aa"), ctx(&r, "host-b:2:bb"));
    let held = Lease::acquire(&a, "app", JobKind::Prune)
        .await
        .unwrap()
        .expect("free");
    let refused = Lease::acquire(&b, "app", JobKind::Prune).await.unwrap();
    let why = refused.err().expect("held by a");
    assert!(why.contains("holds the prune lease until"), "{why}");
    // Another job's lease is another object.
    let drill = Lease::acquire(&b, "app", JobKind::Drill).await.unwrap();
    drill.expect("free").release().await;
    held.release().await;
    assert!(!r.store.contains(LEASE));

    // A holder that died: its lease expired, and is taken over.
    let past = Utc::now() - chrono::Duration::minutes(1);
    let dead = LeaseBody {
        owner: "host-c:3:cc".into(),
        host: "host-c".into(),
        acquired_at: past - chrono::Duration::minutes(15),
        expires_at: past,
    };
    r.put(LEASE, &serde_json::to_vec(&dead).unwrap()).await;
    let taken = Lease::acquire(&b, "app", JobKind::Prune)
        .await
        .unwrap()
        .expect("stale lease taken over");
    let body = read_lease(r.store.as_ref(), LEASE).await.unwrap();
    assert_eq!(body.owner, "host-b:2:bb");
    assert!(body.expires_at > Utc::now() + chrono::Duration::minutes(14));

    // Taken by another meanwhile: a release leaves the other's lease alone.
    write_lease(r.store.as_ref(), LEASE, "host-a:1:aa")
        .await
        .unwrap();
    taken.release().await;
    assert_eq!(
        read_lease(r.store.as_ref(), LEASE).await.unwrap().owner,
        "host-a:1:aa"
    );
}

#[tokio::test]
async fn a_lease_that_cannot_be_written_is_an_error_not_a_lease() {
    let r = Repo::new();
    let a = ctx(&r, "host-a:1:aa");
    r.store.fail_put_at(1);
    assert!(Lease::acquire(&a, "app", JobKind::Prune).await.is_err());
    assert!(!r.store.contains(LEASE));
}
