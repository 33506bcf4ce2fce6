//! One struct per event: `emit` logs it (tracing) and counts it (Prometheus) together, with
//! the same fixed labels, so a log line and a metric never disagree about what happened.

use chrono::{DateTime, Utc};

use super::metrics::{unix, Metrics};
use crate::catalog::records::{Outcome, VerifyMode};

fn passed(o: Outcome) -> f64 {
    if o == Outcome::Passed {
        1.0
    } else {
        0.0
    }
}

/// A backup was committed.
pub struct BackupCommitted<'a> {
    pub database: &'a str,
    pub id: &'a str,
    pub snapshot: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub stored_bytes: u64,
}

impl BackupCommitted<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            database = self.database,
            id = self.id,
            seconds = self.duration_seconds,
            stored_bytes = self.stored_bytes,
            "backup committed"
        );
        self.count(m);
    }
    /// Metrics only: for seeding from the repository at start-up.
    pub fn count(&self, m: &Metrics) {
        let l = [self.database];
        m.backup_last_success
            .with_label_values(&l)
            .set(unix(self.finished_at));
        m.backup_last_snapshot
            .with_label_values(&l)
            .set(unix(self.snapshot));
        m.backup_last_duration
            .with_label_values(&l)
            .set(self.duration_seconds);
        m.backup_last_size
            .with_label_values(&l)
            .set(self.stored_bytes as f64);
    }
}

/// A verification finished (whatever its outcome).
pub struct VerificationFinished<'a> {
    pub database: &'a str,
    pub backup_id: &'a str,
    pub mode: VerifyMode,
    pub outcome: Outcome,
    pub finished_at: DateTime<Utc>,
    pub differences: usize,
}

impl VerificationFinished<'_> {
    pub fn emit(&self, m: &Metrics) {
        match self.outcome {
            Outcome::Passed => tracing::info!(
                database = self.database,
                id = self.backup_id,
                mode = ?self.mode,
                "backup verified"
            ),
            _ => tracing::error!(
                database = self.database,
                id = self.backup_id,
                mode = ?self.mode,
                outcome = ?self.outcome,
                differences = self.differences,
                "backup verification did not pass"
            ),
        }
        self.count(m);
    }
    pub fn count(&self, m: &Metrics) {
        let l = [self.database];
        m.verify_last_passed
            .with_label_values(&l)
            .set(passed(self.outcome));
        m.verify_last_time
            .with_label_values(&l)
            .set(unix(self.finished_at));
    }
}

/// A drill finished.
pub struct DrillFinished<'a> {
    pub database: &'a str,
    pub outcome: Outcome,
    pub finished_at: DateTime<Utc>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub rto_target_seconds: f64,
    pub rpo_target_seconds: f64,
    pub failures: &'a [String],
}

impl DrillFinished<'_> {
    pub fn emit(&self, m: &Metrics) {
        match self.outcome {
            Outcome::Passed => tracing::info!(
                database = self.database,
                rto_seconds = self.rto_seconds,
                rpo_seconds = self.rpo_seconds,
                "drill passed"
            ),
            _ => tracing::error!(
                database = self.database,
                outcome = ?self.outcome,
                failures = %self.failures.join("; "),
                "drill did not pass"
            ),
        }
        self.count(m);
    }
    pub fn count(&self, m: &Metrics) {
        let l = [self.database];
        m.drill_last_passed
            .with_label_values(&l)
            .set(passed(self.outcome));
        m.drill_last_time
            .with_label_values(&l)
            .set(unix(self.finished_at));
        if let Some(v) = self.rto_seconds {
            m.drill_last_rto.with_label_values(&l).set(v);
        }
        if let Some(v) = self.rpo_seconds {
            m.drill_last_rpo.with_label_values(&l).set(v);
        }
        m.drill_rto_target
            .with_label_values(&l)
            .set(self.rto_target_seconds);
        m.drill_rpo_target
            .with_label_values(&l)
            .set(self.rpo_target_seconds);
    }
}

/// A scheduled job run started.
pub struct JobStarted<'a> {
    pub database: &'a str,
    pub job: &'a str,
    /// "schedule" or "catch-up".
    pub trigger: &'a str,
}

impl JobStarted<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            database = self.database,
            job = self.job,
            trigger = self.trigger,
            "job started"
        );
        let l = [self.database, self.job];
        m.job_runs.with_label_values(&l).inc();
        m.job_running.with_label_values(&l).set(1);
    }
}

/// A scheduled job run succeeded.
pub struct JobSucceeded<'a> {
    pub database: &'a str,
    pub job: &'a str,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub summary: &'a str,
}

impl JobSucceeded<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            database = self.database,
            job = self.job,
            seconds = self.duration_seconds,
            summary = self.summary,
            "job succeeded"
        );
        let l = [self.database, self.job];
        m.job_running.with_label_values(&l).set(0);
        m.job_last_success
            .with_label_values(&l)
            .set(unix(self.finished_at));
    }
}

/// A scheduled job run failed (or was cancelled by a shutdown).
pub struct JobFailed<'a> {
    pub database: &'a str,
    pub job: &'a str,
    pub error: &'a str,
    pub duration_seconds: f64,
    pub cancelled: bool,
}

impl JobFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        let l = [self.database, self.job];
        m.job_running.with_label_values(&l).set(0);
        if self.cancelled {
            tracing::warn!(
                database = self.database,
                job = self.job,
                seconds = self.duration_seconds,
                "job cancelled by the shutdown; nothing partial was kept"
            );
            return;
        }
        tracing::error!(
            database = self.database,
            job = self.job,
            seconds = self.duration_seconds,
            error = self.error,
            "job failed"
        );
        m.job_failures.with_label_values(&l).inc();
    }
}

/// A run was not started.
pub struct JobSkipped<'a> {
    pub database: &'a str,
    pub job: &'a str,
    pub reason: &'a str,
}

impl JobSkipped<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            database = self.database,
            job = self.job,
            reason = self.reason,
            "job run skipped"
        );
        m.job_skipped
            .with_label_values(&[self.database, self.job])
            .inc();
    }
}

/// The next run of a job was planned.
pub struct JobScheduled<'a> {
    pub database: &'a str,
    pub job: &'a str,
    pub at: DateTime<Utc>,
}

impl JobScheduled<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::debug!(database = self.database, job = self.job, at = %self.at, "next run");
        m.job_next_run
            .with_label_values(&[self.database, self.job])
            .set(unix(self.at));
    }
}

/// A webhook could not be delivered after every attempt. The job it was about is not
/// affected.
pub struct WebhookFailed<'a> {
    /// Only the host: webhook URLs often carry secrets.
    pub host: &'a str,
    pub attempts: u32,
    pub error: &'a str,
}

impl WebhookFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::warn!(
            host = self.host,
            attempts = self.attempts,
            error = self.error,
            "webhook notification not delivered"
        );
        m.webhook_failures.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_with_fixed_labels() {
        let m = Metrics::new();
        let t: DateTime<Utc> = "2026-11-26T02:00:05Z".parse().unwrap();
        BackupCommitted {
            database: "app",
            id: "20261126T020000.000Z",
            snapshot: t,
            finished_at: t,
            duration_seconds: 4.5,
            stored_bytes: 1234,
        }
        .emit(&m);
        JobFailed {
            database: "app",
            job: "drill",
            error: "x",
            duration_seconds: 1.0,
            cancelled: false,
        }
        .emit(&m);
        let text = m.render();
        assert!(
            text.contains(
                "pgdr_backup_last_success_timestamp_seconds{database=\"app\"} 1795658405"
            ),
            "{text}"
        );
        assert!(text.contains("pgdr_backup_last_size_bytes{database=\"app\"} 1234"));
        assert!(text.contains("pgdr_job_failures_total{database=\"app\",job=\"drill\"} 1"));
        assert!(!text.contains("20261126T020000"), "never the backup id");
    }
}
