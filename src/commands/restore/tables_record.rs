//! The restore record of `pgdr restore --table`: the same record as a full restore's (so
//! the history of restores of a database is one list), mode `tables`, with which tables,
//! where they went and the proof's outcome.

use chrono::{DateTime, Utc};

use crate::catalog::format::restored_tables::{
    StoredRestoredTables, StoredTableMode, TABLE_RESTORE_FORMAT,
};
use crate::catalog::manifest::PhaseTimer;
use crate::catalog::records::{self, RestoreMode, RestoreOutcome, RestoreRecord};

use super::tables::{TableMode, TablePlan};
use super::tables_exec::TableReport;

/// When the run started and its phases, for the record.
pub(super) struct Timing {
    pub started_at: DateTime<Utc>,
    pub clock: std::time::Instant,
    pub timer: PhaseTimer,
}

impl Timing {
    pub fn start() -> Self {
        Timing {
            started_at: Utc::now(),
            clock: std::time::Instant::now(),
            timer: PhaseTimer::default(),
        }
    }
}

fn outcome(report: &TableReport, verify: bool) -> RestoreOutcome {
    match (&report.error, verify, report.differences.is_empty()) {
        (Some(_), _, _) => RestoreOutcome::Failed,
        (None, false, _) => RestoreOutcome::RestoredUnverified,
        (None, true, false) => RestoreOutcome::Differences,
        (None, true, true) => RestoreOutcome::Restored,
    }
}

/// The record of this run, as the repository stores it.
pub(super) fn record(plan: &TablePlan, report: &TableReport, t: Timing) -> RestoreRecord {
    let m = &plan.manifest;
    let finished_at = Utc::now();
    let (mode, schema) = match &plan.mode {
        TableMode::Into(s) => (StoredTableMode::Into, Some(s.clone())),
        TableMode::Replace => (StoredTableMode::Replace, None),
    };
    let rows = m.fingerprint.as_ref().map_or(0, |f| {
        f.data
            .tables
            .iter()
            .filter(|d| {
                plan.selected
                    .tables
                    .iter()
                    .any(|(s, n)| *s == d.schema && *n == d.name)
            })
            .map(|d| d.rows)
            .sum()
    });
    RestoreRecord {
        format_version: TABLE_RESTORE_FORMAT,
        pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
        database: m.database.clone(),
        backup_id: m.id.clone(),
        snapshot_time: m.snapshot.time,
        target: plan.target.describe(),
        mode: RestoreMode::Tables,
        jobs: 1,
        outcome: outcome(report, plan.verify),
        started_at: t.started_at,
        finished_at,
        phases: t.timer.phases,
        total_seconds: t.clock.elapsed().as_secs_f64(),
        rpo_seconds: (finished_at - m.snapshot.time).num_milliseconds() as f64 / 1000.0,
        differences: report.differences.clone(),
        error: report.error.clone(),
        previous_kept_as: None,
        roles_created: Vec::new(),
        roles_kept: Vec::new(),
        managed: Vec::new(),
        host: records::hostname(),
        replay: None,
        tables: Some(StoredRestoredTables {
            mode,
            schema,
            tables: plan
                .selected
                .tables
                .iter()
                .map(|(s, n)| format!("{s}.{n}"))
                .collect(),
            rows,
            cascaded: plan.cascaded.clone(),
            skipped: plan.selected.skipped.clone(),
        }),
        backup_signature: Some(plan.signature.clone()),
    }
}
