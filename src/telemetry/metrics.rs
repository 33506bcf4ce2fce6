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
    /// The change capture's series (`telemetry::capture`).
    pub capture: super::capture::CaptureMetrics,
}

const DB: &[&str] = &["database"];
const DB_JOB: &[&str] = &["database", "job"];

/// The per-database gauges (name, help), in the order of their fields in [`Metrics`]: kept
/// as a table so the names and help texts read as the list they are.
const DB_GAUGES: [(&str, &str); 12] = [
    (
        "pgdr_backup_last_success_timestamp_seconds",
        "When the newest backup was committed (Unix time).",
    ),
    (
        "pgdr_backup_last_snapshot_timestamp_seconds",
        "The point in time the newest backup restores to (Unix time): now minus this is the current RPO.",
    ),
    (
        "pgdr_backup_last_duration_seconds",
        "How long the newest backup took.",
    ),
    (
        "pgdr_backup_last_size_bytes",
        "Bytes stored for the newest backup (compressed, encrypted).",
    ),
    (
        "pgdr_verify_last_passed",
        "1 if the newest verification passed, 0 if it found differences or could not run.",
    ),
    (
        "pgdr_verify_last_timestamp_seconds",
        "When the newest verification finished (Unix time).",
    ),
    (
        "pgdr_drill_last_passed",
        "1 if the last drill passed, 0 otherwise.",
    ),
    (
        "pgdr_drill_last_timestamp_seconds",
        "When the last drill finished (Unix time).",
    ),
    (
        "pgdr_drill_last_rto_seconds",
        "Recovery time measured by the last drill.",
    ),
    (
        "pgdr_drill_last_rpo_seconds",
        "Recovery point (data loss) measured by the last drill.",
    ),
    (
        "pgdr_drill_rto_target_seconds",
        "The RTO target the last drill was held to.",
    ),
    (
        "pgdr_drill_rpo_target_seconds",
        "The RPO target the last drill was held to.",
    ),
];

/// The per-job counters (name, help): runs, failures, skips, in field order.
const JOB_COUNTERS: [(&str, &str); 3] = [
    ("pgdr_job_runs_total", "Scheduled job runs started."),
    ("pgdr_job_failures_total", "Scheduled job runs that failed."),
    (
        "pgdr_job_skipped_total",
        "Runs not started: the previous run still going, or another pgdr holds the job.",
    ),
];

/// The per-job gauges (name, help): last success and next run, in field order.
const JOB_GAUGES: [(&str, &str); 2] = [
    (
        "pgdr_job_last_success_timestamp_seconds",
        "When the job last succeeded (Unix time).",
    ),
    (
        "pgdr_job_next_run_timestamp_seconds",
        "When the job runs next (Unix time).",
    ),
];

/// Register a new metric: a definition error or a duplicate name is a bug in the tables
/// above, found by the first test that builds [`Metrics`].
fn reg<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    m: prometheus::Result<M>,
) -> M {
    let m = m.expect("valid metric");
    registry
        .register(Box::new(m.clone()))
        .expect("unique metric");
    m
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let gauge = |(name, help): (&str, &str), labels: &[&str]| {
            reg(&registry, GaugeVec::new(Opts::new(name, help), labels))
        };
        let [backup_last_success, backup_last_snapshot, backup_last_duration, backup_last_size, verify_last_passed, verify_last_time, drill_last_passed, drill_last_time, drill_last_rto, drill_last_rpo, drill_rto_target, drill_rpo_target] =
            DB_GAUGES.map(|d| gauge(d, DB));
        let [job_runs, job_failures, job_skipped] = JOB_COUNTERS
            .map(|(name, help)| reg(&registry, IntCounterVec::new(Opts::new(name, help), DB_JOB)));
        let job_running = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new("pgdr_job_running", "1 while the job runs."),
                DB_JOB,
            ),
        );
        let [job_last_success, job_next_run] = JOB_GAUGES.map(|d| gauge(d, DB_JOB));
        let webhook_failures = reg(
            &registry,
            IntCounter::new(
                "pgdr_webhook_failures_total",
                "Notifications that could not be delivered after every retry.",
            ),
        );
        let start_time = reg(
            &registry,
            Gauge::new(
                "pgdr_daemon_start_time_seconds",
                "When the daemon started (Unix time).",
            ),
        );
        Metrics {
            capture: super::capture::CaptureMetrics::new(&registry),
            backup_last_success,
            backup_last_snapshot,
            backup_last_duration,
            backup_last_size,
            verify_last_passed,
            verify_last_time,
            drill_last_passed,
            drill_last_time,
            drill_last_rto,
            drill_last_rpo,
            drill_rto_target,
            drill_rpo_target,
            job_runs,
            job_failures,
            job_skipped,
            job_running,
            job_last_success,
            job_next_run,
            webhook_failures,
            start_time,
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
