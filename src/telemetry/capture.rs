//! The change capture's events and gauges. One struct per event: `emit` logs and counts it
//! together; an alert also makes the webhook [`Notification`] (job "capture", outcome
//! "failed", so every webhook gets it). Alerts are sent when their condition starts, not at
//! every look (the daemon keeps which are open).

use chrono::{DateTime, Utc};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::metrics::{unix, Metrics};
use super::webhook::Notification;

/// The capture's series: per database, and alerts per database and kind.
pub struct CaptureMetrics {
    pub lag_bytes: GaugeVec,
    pub lag_seconds: GaugeVec,
    pub retained_bytes: GaugeVec,
    pub covered_until: GaugeVec,
    pub recoverable_from: GaugeVec,
    /// 1 while the slot exists and its `wal_status` is reserved or extended.
    pub slot_ok: GaugeVec,
    pub gaps: GaugeVec,
    /// 1 while this daemon's runner of the database runs.
    pub running: IntGaugeVec,
    pub restarts: IntCounterVec,
    pub alerts: IntCounterVec,
}

const GAUGES: [(&str, &str); 7] = [
    (
        "pgdr_capture_lag_bytes",
        "Server WAL position minus the position durable in the repository.",
    ),
    (
        "pgdr_capture_lag_seconds",
        "Now minus the newest point durable in the repository: the RPO with capture.",
    ),
    (
        "pgdr_capture_slot_retained_bytes",
        "WAL the server keeps for the capture slot (current LSN minus restart_lsn).",
    ),
    (
        "pgdr_capture_covered_until_timestamp_seconds",
        "The newest point durable in the repository (Unix time).",
    ),
    (
        "pgdr_capture_recoverable_from_timestamp_seconds",
        "The oldest anchored backup the stored stream reaches (Unix time).",
    ),
    (
        "pgdr_capture_slot_ok",
        "1 if the capture slot exists and its wal_status is reserved or extended.",
    ),
    ("pgdr_capture_gaps", "Recorded coverage gaps."),
];

impl CaptureMetrics {
    pub fn new(registry: &Registry) -> CaptureMetrics {
        fn reg<M: prometheus::core::Collector + Clone + 'static>(
            r: &Registry,
            m: prometheus::Result<M>,
        ) -> M {
            let m = m.expect("valid metric");
            r.register(Box::new(m.clone())).expect("unique metric");
            m
        }
        let [lag_bytes, lag_seconds, retained_bytes, covered_until, recoverable_from, slot_ok, gaps] =
            GAUGES.map(|(n, h)| reg(registry, GaugeVec::new(Opts::new(n, h), &["database"])));
        CaptureMetrics {
            lag_bytes,
            lag_seconds,
            retained_bytes,
            covered_until,
            recoverable_from,
            slot_ok,
            gaps,
            running: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "pgdr_capture_running",
                        "1 while this daemon runs the capture.",
                    ),
                    &["database"],
                ),
            ),
            restarts: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "pgdr_capture_restarts_total",
                        "Capture runner restarts after an error.",
                    ),
                    &["database"],
                ),
            ),
            alerts: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "pgdr_capture_alerts_total",
                        "Capture alerts raised, by kind.",
                    ),
                    &["database", "alert"],
                ),
            ),
        }
    }
}

/// One look at a capture (gauges only; nothing is logged at each look).
pub struct CaptureObserved<'a> {
    pub database: &'a str,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    pub retained_bytes: Option<u64>,
    pub covered_until: Option<DateTime<Utc>>,
    pub recoverable_from: Option<DateTime<Utc>>,
    pub slot_ok: bool,
    pub gaps: usize,
}

impl CaptureObserved<'_> {
    pub fn emit(&self, m: &Metrics) {
        let c = &m.capture;
        let l = [self.database];
        let set = |g: &GaugeVec, v: Option<f64>| match v {
            Some(v) => g.with_label_values(&l).set(v),
            None => {
                let _ = g.remove_label_values(&l);
            }
        };
        set(&c.lag_bytes, self.lag_bytes.map(|b| b as f64));
        set(&c.lag_seconds, self.lag_seconds);
        set(&c.retained_bytes, self.retained_bytes.map(|b| b as f64));
        set(&c.covered_until, self.covered_until.map(unix));
        set(&c.recoverable_from, self.recoverable_from.map(unix));
        c.slot_ok
            .with_label_values(&l)
            .set(if self.slot_ok { 1.0 } else { 0.0 });
        c.gaps.with_label_values(&l).set(self.gaps as f64);
    }
}

/// The runner of a database started, or stopped (`running` false).
pub struct CaptureRunning<'a> {
    pub database: &'a str,
    pub running: bool,
}

impl CaptureRunning<'_> {
    pub fn emit(&self, m: &Metrics) {
        if self.running {
            tracing::info!(database = self.database, "capture started");
        } else {
            tracing::info!(database = self.database, "capture stopped");
        }
        m.capture
            .running
            .with_label_values(&[self.database])
            .set(self.running as i64);
    }
}

/// The runner ended with an error; the daemon starts it again after `retry_seconds`.
pub struct CaptureRunFailed<'a> {
    pub database: &'a str,
    pub error: &'a str,
    pub retry_seconds: f64,
}

impl CaptureRunFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::error!(
            database = self.database,
            error = self.error,
            retry_seconds = self.retry_seconds,
            "capture failed; restarting after a pause"
        );
        m.capture.restarts.with_label_values(&[self.database]).inc();
        m.capture.running.with_label_values(&[self.database]).set(0);
    }
}

/// Another pgdr holds the capture lease: this daemon waits and tries again (it takes over
/// when that runner's lease expires).
pub struct CaptureHeldElsewhere<'a> {
    pub database: &'a str,
    pub why: &'a str,
}

impl CaptureHeldElsewhere<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            database = self.database,
            why = self.why,
            "capture runs elsewhere; waiting"
        );
        m.capture.running.with_label_values(&[self.database]).set(0);
    }
}

/// A capture alert: lag above the limit, slot unreserved/lost/missing, a gap, a backup not
/// anchored, a server that cannot be asked. `kind` is the metric label.
pub struct CaptureAlert<'a> {
    pub database: &'a str,
    pub kind: &'a str,
    pub message: &'a str,
}

impl CaptureAlert<'_> {
    pub fn emit(&self, m: &Metrics) {
        tracing::error!(
            database = self.database,
            alert = self.kind,
            message = self.message,
            "capture alert"
        );
        m.capture
            .alerts
            .with_label_values(&[self.database, self.kind])
            .inc();
    }

    pub fn notification(&self, at: DateTime<Utc>) -> Notification {
        Notification {
            source: "pgdr",
            database: self.database.to_string(),
            job: format!("capture ({})", self.kind),
            outcome: "failed",
            error: Some(self.message.to_string()),
            summary: None,
            started_at: at,
            finished_at: at,
            duration_seconds: 0.0,
            host: crate::catalog::records::hostname(),
        }
    }
}

/// An alert's condition ended.
pub struct CaptureAlertCleared<'a> {
    pub database: &'a str,
    pub kind: &'a str,
}

impl CaptureAlertCleared<'_> {
    pub fn emit(&self, _m: &Metrics) {
        tracing::info!(
            database = self.database,
            alert = self.kind,
            "capture alert cleared"
        );
    }
}
