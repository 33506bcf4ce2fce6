//! `pgdr status`: health at a glance, without Prometheus. Per database: the newest backup and
//! its age against `max_backup_age`, the newest verification and drill with their results,
//! the worst RPO of the last 30 days, the last scheduled runs and the next ones.
//!
//! One report, two renderings (text, JSON). Exit status: 0 all within limits, 1 at least one
//! problem (one line each), 2 could not look (config, repository).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::records::{Outcome, VerifyMode, WorstRpo};
use crate::catalog::{BackupId, Catalog, Listed};
use crate::config::ops::JobKind;
use crate::config::Settings;
use crate::drill::rpo;
use crate::error::Result;
use crate::progress::human_age;
use crate::schedule::retention::{self, show_duration};
use crate::schedule::state::{self, JobState, RunOutcome};

#[path = "status_capture.rs"]
mod capture;
#[path = "status_keys.rs"]
mod keys;
#[path = "status_labels.rs"]
mod labels;
pub use labels::LabelledBackup;

/// The worst RPO is looked for over this many days.
pub const RPO_WINDOW_DAYS: u32 = 30;

pub struct StatusOptions {
    pub database: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub now: DateTime<Utc>,
    pub repository: String,
    pub databases: Vec<DatabaseStatus>,
}

impl StatusReport {
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.databases.iter().flat_map(|d| d.problems.iter())
    }
    pub fn healthy(&self) -> bool {
        self.problems().next().is_none()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    pub database: String,
    pub backups: usize,
    pub newest_backup: Option<NewestBackup>,
    pub max_backup_age_seconds: f64,
    pub newest_verification: Option<Verification>,
    pub newest_drill: Option<Drill>,
    pub worst_rpo: Option<WorstRpo>,
    /// Only when configured (`rpo_target`); the built-in default is a drill's business.
    pub rpo_target_seconds: Option<f64>,
    /// Why prune deletes nothing by age right now, if so.
    pub retention_hold: Option<String>,
    pub jobs: Vec<JobStatus>,
    /// The data at risk now: with capture, the time since the newest point durable in the
    /// repository; without, the age of the newest backup's snapshot.
    pub rpo_seconds: Option<f64>,
    /// "capture" or "backup": what `rpo_seconds` is measured from.
    pub rpo_source: &'static str,
    /// Change capture (when the repository says it is enabled).
    pub capture: Option<crate::capture::health::CaptureHealth>,
    /// Backups made with `--label`: a checkpoint not verified yet is a problem.
    pub labelled: Vec<LabelledBackup>,
    /// One line each, in operator words; empty when all is within limits.
    pub problems: Vec<String>,
    /// Restoring is at risk now: no backup, or the newest one is too old, unreadable or failed
    /// its verification (`status --nagios`: CRITICAL; the other problems are WARNING).
    pub critical: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewestBackup {
    pub id: BackupId,
    pub snapshot_time: DateTime<Utc>,
    pub age_seconds: f64,
    pub stored_bytes: u64,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub backup_id: BackupId,
    pub mode: VerifyMode,
    pub outcome: Outcome,
    pub finished_at: DateTime<Utc>,
    pub differences: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub outcome: Outcome,
    pub finished_at: DateTime<Utc>,
    pub backup_id: Option<BackupId>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job: JobKind,
    pub schedule: String,
    pub timezone: String,
    pub next_run: Option<DateTime<Utc>>,
    pub last: Option<JobState>,
}

pub async fn run(
    settings: &Settings,
    opts: &StatusOptions,
    now: DateTime<Utc>,
) -> Result<StatusReport> {
    crate::scratch::sweep_orphans(&settings.scratch).await;
    let catalog = Catalog::open(settings).await?;
    let names =
        crate::schedule::prune::database_names(settings, &catalog, opts.database.as_deref())
            .await?;
    let mut databases = Vec::new();
    for name in names {
        databases.push(database_status(settings, &catalog, &name, now).await?);
    }
    Ok(StatusReport {
        now,
        repository: catalog.describe(),
        databases,
    })
}

async fn database_status(
    settings: &Settings,
    catalog: &Catalog,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DatabaseStatus> {
    let ops = settings.ops.database(name);
    let listed = catalog.list(Some(name)).await?;
    let drills = catalog.drills(Some(name)).await?;
    let mut jobs = Vec::new();
    for j in &ops.jobs {
        jobs.push(JobStatus {
            job: j.kind,
            schedule: j.schedule.expr.clone(),
            timezone: j.schedule.tz.name().to_string(),
            next_run: j.schedule.next_after(now),
            last: state::load(catalog, name, j.kind).await?,
        });
    }
    let rpo_target = settings
        .databases
        .iter()
        .find(|d| d.name == name)
        .and_then(|d| d.rpo_target)
        .map(|t| t.as_secs_f64());
    let facts = retention::facts(&listed, &drills);
    let health = capture::capture_health(settings, catalog, name, &listed, now).await?;
    let mut s = assess(
        name,
        &listed,
        &drills,
        ops.retention.max_backup_age,
        rpo_target,
        retention::hold(&facts, &ops.retention, now),
        jobs,
        now,
    );
    if let Some(h) = health {
        capture::apply(&mut s, h);
    }
    labels::apply(&mut s, &listed);
    keys::apply(&mut s, settings, catalog, &listed, now).await?;
    Ok(s)
}

/// The judgement, pure: everything is read before.
#[allow(clippy::too_many_arguments)]
pub fn assess(
    name: &str,
    listed: &[Listed],
    drills: &[crate::catalog::DrillRecord],
    max_backup_age: std::time::Duration,
    rpo_target_seconds: Option<f64>,
    retention_hold: Option<String>,
    jobs: Vec<JobStatus>,
    now: DateTime<Utc>,
) -> DatabaseStatus {
    let mut problems = Vec::new();
    let p = |s: String| format!("database '{name}': {s}");
    let newest = listed.iter().rev().find_map(|l| match l {
        Listed::Ok(e) => Some(e),
        Listed::Damaged { .. } => None,
    });
    let newest_backup = newest.map(|e| {
        let m = &e.manifest;
        NewestBackup {
            id: m.id.clone(),
            snapshot_time: m.snapshot.time,
            age_seconds: secs(now - m.snapshot.time),
            stored_bytes: m.objects.iter().map(|o| o.stored_bytes).sum(),
            duration_seconds: m.duration_seconds(),
        }
    });
    problems.extend(backup_problems(listed, &newest_backup, max_backup_age, now).map(p));
    let newest_verification = newest_verification(listed);
    problems.extend(newest.and_then(|e| failed_verification(e)).map(p));
    // The checks above are the newest backup's own: any of them makes the database critical.
    let critical = !problems.is_empty();
    let newest_drill = drills.last().map(|d| Drill {
        outcome: d.outcome,
        finished_at: d.finished_at,
        backup_id: d.backup.as_ref().map(|b| b.id.clone()),
        rto_seconds: d.rto_seconds,
        rpo_seconds: d.rpo_seconds,
        failures: d.failures.clone(),
    });
    problems.extend(
        newest_drill
            .as_ref()
            .and_then(|d| drill_problem(d, drills))
            .map(p),
    );
    let worst = rpo::worst_rpo(&rpo::points(listed), now, RPO_WINDOW_DAYS);
    problems.extend(rpo_problem(&worst, rpo_target_seconds).map(p));
    problems.extend(jobs.iter().filter_map(job_problem).map(p));
    let rpo_seconds = newest_backup.as_ref().map(|b| b.age_seconds);
    DatabaseStatus {
        database: name.to_string(),
        backups: listed.len(),
        newest_backup,
        max_backup_age_seconds: max_backup_age.as_secs_f64(),
        newest_verification,
        newest_drill,
        worst_rpo: worst,
        rpo_target_seconds,
        retention_hold,
        jobs,
        rpo_seconds,
        rpo_source: "backup",
        capture: None,
        labelled: Vec::new(),
        problems,
        critical,
    }
}

/// No backup, one older than `max_backup_age`, or a newest backup that cannot be read: the
/// first things an operator must know, in that order.
fn backup_problems(
    listed: &[Listed],
    newest_backup: &Option<NewestBackup>,
    max_backup_age: std::time::Duration,
    now: DateTime<Utc>,
) -> impl Iterator<Item = String> {
    let mut problems = Vec::new();
    match newest_backup {
        None => problems.push("no backup in the repository".into()),
        Some(b) if b.age_seconds > max_backup_age.as_secs_f64() => problems.push(format!(
            "the newest backup {} is {} old (max_backup_age {})",
            b.id,
            human_age(now - b.snapshot_time),
            show_duration(max_backup_age)
        )),
        _ => {}
    }
    if let Some(Listed::Damaged { id, error, .. }) = listed.last() {
        problems.push(format!("the newest backup {id} cannot be read: {error}"));
    }
    problems.into_iter()
}

/// The most recent verification of any backup (by when it finished), for the report.
fn newest_verification(listed: &[Listed]) -> Option<Verification> {
    listed
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(e) => e.verification.as_ref(),
            _ => None,
        })
        .max_by_key(|v| v.finished_at)
        .map(|v| Verification {
            backup_id: v.backup_id.clone(),
            mode: v.mode,
            outcome: v.outcome,
            finished_at: v.finished_at,
            differences: v.differences.len(),
        })
}

/// A problem only when the newest backup itself failed verification: an older failure was
/// superseded by newer backups.
fn failed_verification(e: &crate::catalog::Entry) -> Option<String> {
    let v = e
        .verification
        .as_ref()
        .filter(|v| v.outcome == Outcome::Failed)?;
    Some(format!(
        "the newest backup {} failed verification: {} difference(s){}",
        v.backup_id,
        v.differences.len(),
        v.differences
            .first()
            .map(|d| format!(", first: {d}"))
            .unwrap_or_default()
    ))
}

/// The last drill failed or could not run: why, or where to look.
fn drill_problem(d: &Drill, drills: &[crate::catalog::DrillRecord]) -> Option<String> {
    match d.outcome {
        Outcome::Passed => None,
        Outcome::Failed => Some(format!(
            "the last drill ({}) failed: {}",
            d.finished_at.format("%Y-%m-%d %H:%M"),
            if d.failures.is_empty() {
                "see `pgdr drill history`".to_string()
            } else {
                d.failures.join("; ")
            }
        )),
        Outcome::Error => Some(format!(
            "the last drill ({}) could not run: {}",
            d.finished_at.format("%Y-%m-%d %H:%M"),
            drills
                .last()
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "see `pgdr drill history`".into())
        )),
    }
}

/// The worst RPO of the window above the configured target (none when no target is set).
fn rpo_problem(worst: &Option<WorstRpo>, rpo_target_seconds: Option<f64>) -> Option<String> {
    let (Some(w), Some(t)) = (worst, rpo_target_seconds) else {
        return None;
    };
    (w.seconds > t).then(|| {
        format!(
            "the worst RPO over {RPO_WINDOW_DAYS} days is {} (from {} to {}), above the rpo_target of {}",
            human_age(chrono::Duration::milliseconds((w.seconds * 1000.0) as i64)),
            w.from.format("%Y-%m-%d %H:%M"),
            w.to.format("%Y-%m-%d %H:%M"),
            show_duration(std::time::Duration::from_secs_f64(t))
        )
    })
}

/// The last scheduled run of a job failed: when, how many times in a row, and its error.
fn job_problem(j: &JobStatus) -> Option<String> {
    let run = j.last.as_ref().and_then(|s| s.last_run.as_ref())?;
    (run.outcome == RunOutcome::Failed).then(|| {
        format!(
            "the last scheduled {} ({}) failed{}: {}",
            j.job,
            run.started_at.format("%Y-%m-%d %H:%M"),
            match j.last.as_ref().map_or(0, |s| s.consecutive_failures) {
                n if n > 1 => format!(" ({n} times in a row)"),
                _ => String::new(),
            },
            run.error.as_deref().unwrap_or("no error recorded")
        )
    })
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::manifest::tests::sample;
    use crate::catalog::records::VerificationRecord;
    use crate::catalog::Entry;

    fn backup(t: &str, verified: Option<Outcome>) -> Listed {
        let t: DateTime<Utc> = t.parse().unwrap();
        let mut m = sample();
        m.id = BackupId::from_time(t);
        m.snapshot.time = t;
        let verification = verified.map(|outcome| VerificationRecord {
            backup_signature: None,
            format_version: 1,
            pgdr_version: "0".into(),
            database: "app".into(),
            backup_id: m.id.clone(),
            mode: VerifyMode::Quick,
            outcome,
            started_at: t,
            finished_at: t,
            phases: vec![],
            differences: if outcome == Outcome::Failed {
                vec!["public.t: 3 rows in backup, 2 after restore".into()]
            } else {
                vec![]
            },
            error: None,
            scratch: None,
            host: "h".into(),
        });
        Listed::Ok(Box::new(Entry {
            manifest: m,
            dump_verification: verification.clone(),
            verification,
            keep: None,
            signer: None,
        }))
    }

    fn now() -> DateTime<Utc> {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(26 * 3600);

    #[test]
    fn healthy_and_each_problem_in_one_line() {
        let ok = vec![
            backup("2026-11-25T02:00:00Z", Some(Outcome::Passed)),
            backup("2026-11-26T02:00:00Z", Some(Outcome::Passed)),
        ];
        let s = assess("app", &ok, &[], DAY, None, None, vec![], now());
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.newest_backup.unwrap().age_seconds, 10.0 * 3600.0);
        let w = s.worst_rpo.unwrap();
        assert_eq!(w.seconds, 24.0 * 3600.0);

        let s = assess("app", &[], &[], DAY, None, None, vec![], now());
        assert_eq!(
            s.problems,
            vec!["database 'app': no backup in the repository"]
        );

        let old = vec![backup("2026-11-25T02:00:00Z", None)];
        let s = assess("app", &old, &[], DAY, None, None, vec![], now());
        assert_eq!(
            s.problems,
            vec!["database 'app': the newest backup 20261125T020000.000Z is 34h 00m old (max_backup_age 26h)"]
        );

        let bad = vec![backup("2026-11-26T02:00:00Z", Some(Outcome::Failed))];
        let s = assess("app", &bad, &[], DAY, None, None, vec![], now());
        assert_eq!(
            s.problems,
            vec!["database 'app': the newest backup 20261126T020000.000Z failed verification: 1 difference(s), first: public.t: 3 rows in backup, 2 after restore"]
        );

        // An RPO target is checked only when configured.
        let s = assess("app", &ok, &[], DAY, Some(3600.0), None, vec![], now());
        assert_eq!(
            s.problems,
            vec!["database 'app': the worst RPO over 30 days is 24h 00m (from 2026-11-25 02:00 to 2026-11-26 02:00), above the rpo_target of 1h"]
        );
    }
}
