//! The last run of each scheduled job, kept in the repository (`<database>/jobs/<job>.json`),
//! so that `status`, `schedule` and a daemon started on another host all see it. A failed
//! backup leaves no backup behind; this record is where its failure is remembered. The catalog
//! stores and finds the record; this module says what it holds.

use chrono::{DateTime, Utc};

use crate::catalog::Repository;
use crate::config::ops::JobKind;
use crate::error::Result;

/// The JSON of [`JobState`] (`catalog::format::jobs`) and the conversions.
mod format;

pub const FORMAT_VERSION: u32 = crate::catalog::format::jobs::JOB_STATE_FORMAT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    Failed,
    /// Stopped by a shutdown before it finished.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: RunOutcome,
    /// One line, for failures.
    pub error: Option<String>,
    /// What it did, in a few words ("backup 20261126T020000.000Z, 1.2 MiB, verified quick").
    pub summary: Option<String>,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub format_version: u32,
    pub database: String,
    pub job: JobKind,
    pub last_run: Option<JobRun>,
    pub last_success: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl JobState {
    pub fn new(database: &str, job: JobKind) -> Self {
        JobState {
            format_version: FORMAT_VERSION,
            database: database.to_string(),
            job,
            last_run: None,
            last_success: None,
            consecutive_failures: 0,
        }
    }

    pub fn record(&mut self, run: JobRun) {
        match run.outcome {
            RunOutcome::Succeeded => {
                self.last_success = Some(run.finished_at);
                self.consecutive_failures = 0;
            }
            RunOutcome::Failed => self.consecutive_failures += 1,
            RunOutcome::Cancelled => {}
        }
        self.last_run = Some(run);
    }
}

/// The stored state; None if the job never ran (or its record is unreadable: logged).
pub async fn load(repo: &Repository, database: &str, job: JobKind) -> Result<Option<JobState>> {
    repo.job_state(database, job.as_str()).await
}

pub async fn save(repo: &Repository, s: &JobState) -> Result<()> {
    repo.save_job_state(&s.database, s.job.as_str(), s).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Repository::new(std::sync::Arc::new(crate::store::fs::FsStore::new(
            dir.path().to_path_buf(),
        )));
        assert!(load(&store, "app", JobKind::Backup)
            .await
            .unwrap()
            .is_none());
        let mut s = JobState::new("app", JobKind::Backup);
        let t: DateTime<Utc> = "2026-11-26T02:00:00Z".parse().unwrap();
        let run = |outcome| JobRun {
            started_at: t,
            finished_at: t,
            outcome,
            error: None,
            summary: None,
            host: "h".into(),
        };
        s.record(run(RunOutcome::Failed));
        s.record(run(RunOutcome::Failed));
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.last_success, None);
        s.record(run(RunOutcome::Succeeded));
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.last_success, Some(t));
        save(&store, &s).await.unwrap();
        assert_eq!(load(&store, "app", JobKind::Backup).await.unwrap(), Some(s));
        assert!(dir.path().join("app/jobs/backup.json").exists());
    }
}
