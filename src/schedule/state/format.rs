//! Job state as stored: [`crate::catalog::format::jobs`] owns the JSON; these are the
//! conversions from and to the runtime types of [`super`].

use crate::catalog::format::jobs::{StoredJobKind, StoredJobRun, StoredJobState, StoredRunOutcome};
use crate::catalog::format::{mirror_enum, via_stored};
use crate::config::ops::JobKind;

use super::{JobRun, JobState, RunOutcome};

mirror_enum!(JobKind, StoredJobKind, [Backup, Drill, Prune, ChainProof]);
mirror_enum!(RunOutcome, StoredRunOutcome, [Succeeded, Failed, Cancelled]);
via_stored!(RunOutcome, StoredRunOutcome);
via_stored!(JobRun, StoredJobRun);
via_stored!(JobState, StoredJobState);

impl From<&JobRun> for StoredJobRun {
    fn from(r: &JobRun) -> Self {
        StoredJobRun {
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: (&r.outcome).into(),
            error: r.error.clone(),
            summary: r.summary.clone(),
            host: r.host.clone(),
        }
    }
}

impl From<StoredJobRun> for JobRun {
    fn from(r: StoredJobRun) -> Self {
        JobRun {
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome.into(),
            error: r.error,
            summary: r.summary,
            host: r.host,
        }
    }
}

impl From<&JobState> for StoredJobState {
    fn from(s: &JobState) -> Self {
        StoredJobState {
            format_version: s.format_version,
            database: s.database.clone(),
            job: (&s.job).into(),
            last_run: s.last_run.as_ref().map(Into::into),
            last_success: s.last_success,
            consecutive_failures: s.consecutive_failures,
        }
    }
}

impl From<StoredJobState> for JobState {
    fn from(s: StoredJobState) -> Self {
        JobState {
            format_version: s.format_version,
            database: s.database,
            job: s.job.into(),
            last_run: s.last_run.map(Into::into),
            last_success: s.last_success,
            consecutive_failures: s.consecutive_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime type writes exactly the stored golden (`catalog::format`'s test reads it
    /// with the stored struct alone).
    #[test]
    fn job_state_writes_the_golden_file_back() {
        let path = format!(
            "{}/tests/fixtures/format/job-state-v1.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let s: JobState = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(s.job, JobKind::Backup);
        assert_eq!(s.last_run.as_ref().unwrap().outcome, RunOutcome::Failed);
        assert_eq!(serde_json::to_vec_pretty(&s).unwrap(), bytes);
    }
}
