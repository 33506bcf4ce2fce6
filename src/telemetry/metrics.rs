//! The Prometheus metrics of the daemon, in one registry. Labels are fixed (`database`, `job`)
//! and never carry a backup id, so the number of series stays that of the configuration.
//! Metrics are only changed through the events in `events.rs`, which log at the same time.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub backup_last_success: GaugeVec,
    pub backup_last_snapshot: GaugeVec,
    pub backup_last_duration: GaugeVec,
    pub backup_last_size: GaugeVec,
    pub verify_last_passed: GaugeVec,
    pub verify_last_time: GaugeVec,
    pub drill_last_passed: GaugeVec,
    pub drill_last_time: GaugeVec,
    pub drill_last_rto: GaugeVec,
    pub drill_last_rpo: GaugeVec,
    pub drill_rto_target: GaugeVec,
    pub drill_rpo_target: GaugeVec,
    pub job_runs: IntCounterVec,
    pub job_failures: IntCounterVec,
    pub job_skipped: IntCounterVec,
    pub job_running: IntGaugeVec,
    pub job_last_success: GaugeVec,
    pub job_next_run: GaugeVec,
    pub webhook_failures: IntCounter,
    pub start_time: Gauge,
}

const DB: &[&str] = &["database"];
const DB_JOB: &[&str] = &["database", "job"];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric");
                m
            }};
        }
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        Metrics {
            backup_last_success: reg!(gauge(
                "pgdr_backup_last_success_timestamp_seconds",
                "When the newest backup was committed (Unix time).",
                DB
            )),
            backup_last_snapshot: reg!(gauge(
                "pgdr_backup_last_snapshot_timestamp_seconds",
                "The point in time the newest backup restores to (Unix time): now minus this is the current RPO.",
                DB
            )),
            backup_last_duration: reg!(gauge(
                "pgdr_backup_last_duration_seconds",
                "How long the newest backup took.",
                DB
            )),
            backup_last_size: reg!(gauge(
                "pgdr_backup_last_size_bytes",
                "Bytes stored for the newest backup (compressed, encrypted).",
                DB
            )),
            verify_last_passed: reg!(gauge(
                "pgdr_verify_last_passed",
                "1 if the newest verification passed, 0 if it found differences or could not run.",
                DB
            )),
            verify_last_time: reg!(gauge(
                "pgdr_verify_last_timestamp_seconds",
                "When the newest verification finished (Unix time).",
                DB
            )),
            drill_last_passed: reg!(gauge(
                "pgdr_drill_last_passed",
                "1 if the last drill passed, 0 otherwise.",
                DB
            )),
            drill_last_time: reg!(gauge(
                "pgdr_drill_last_timestamp_seconds",
                "When the last drill finished (Unix time).",
                DB
            )),
            drill_last_rto: reg!(gauge(
                "pgdr_drill_last_rto_seconds",
                "Recovery time measured by the last drill.",
                DB
            )),
            drill_last_rpo: reg!(gauge(
                "pgdr_drill_last_rpo_seconds",
                "Recovery point (data loss) measured by the last drill.",
                DB
            )),
            drill_rto_target: reg!(gauge(
                "pgdr_drill_rto_target_seconds",
                "The RTO target the last drill was held to.",
                DB
            )),
            drill_rpo_target: reg!(gauge(
                "pgdr_drill_rpo_target_seconds",
                "The RPO target the last drill was held to.",
                DB
            )),
            job_runs: reg!(IntCounterVec::new(
                Opts::new("pgdr_job_runs_total", "Scheduled job runs started."),
                DB_JOB
            )),
            job_failures: reg!(IntCounterVec::new(
                Opts::new("pgdr_job_failures_total", "Scheduled job runs that failed."),
                DB_JOB
            )),
            job_skipped: reg!(IntCounterVec::new(
                Opts::new(
                    "pgdr_job_skipped_total",
                    "Runs not started: the previous run still going, or another pgdr holds the job."
                ),
                DB_JOB
            )),
            job_running: reg!(IntGaugeVec::new(
                Opts::new("pgdr_job_running", "1 while the job runs."),
                DB_JOB
            )),
            job_last_success: reg!(gauge(
                "pgdr_job_last_success_timestamp_seconds",
                "When the job last succeeded (Unix time).",
                DB_JOB
            )),
            job_next_run: reg!(gauge(
                "pgdr_job_next_run_timestamp_seconds",
                "When the job runs next (Unix time).",
                DB_JOB
            )),
            webhook_failures: reg!(IntCounter::new(
                "pgdr_webhook_failures_total",
                "Notifications that could not be delivered after every retry."
            )),
            start_time: reg!(Gauge::new(
                "pgdr_daemon_start_time_seconds",
                "When the daemon started (Unix time)."
            )),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}
