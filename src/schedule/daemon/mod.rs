//! `pgdr daemon`: runs the scheduled jobs of every configured database (backup with a
//! verification after it, drill, prune), records each run in the repository, counts it in
//! the metrics and notifies the webhooks. Each job calls a stage's engine (`crate::backup`,
//! `crate::verify`, `crate::drill`, `schedule::prune`), never a command.
//!
//! - The same job of the same database never runs twice at once: within a daemon a job whose
//!   previous run is still going is skipped; across daemons, see
//!   [`SourceLock`](crate::backup::SourceLock) (backups) and [`Lease`](crate::catalog::Lease)
//!   (drills and prune, in `catalog::leases`). A daemon that finds the run of a slot already
//!   done by another daemon skips it too.
//! - A job missed while the daemon was down (its last success older than its period) runs
//!   once at start-up, unless `catch_up = false`.
//! - On SIGTERM/SIGINT nothing new starts; running jobs get `grace_period` to finish, then
//!   are cancelled: pg_dump is ended, a multipart upload aborted, a scratch cluster removed,
//!   and nothing partial stays visible. The daemon then exits 0.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::config::Settings;
use crate::telemetry::alerts::Alerts;
use crate::telemetry::metrics::Metrics;

mod capture;
mod chain;
mod jobs;
mod planning;
mod run_loop;

pub use run_loop::run;

pub struct DaemonOptions {
    pub database: Option<String>,
}

/// Everything a job run needs, shared.
struct Ctx {
    settings: Arc<Settings>,
    catalog: Catalog,
    metrics: Arc<Metrics>,
    notifier: Alerts,
    /// `host:pid:random`: who holds a lease.
    owner: String,
}

/// Why a run starts.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Its cron time came.
    Scheduled { due: DateTime<Utc> },
    /// It was missed while no daemon ran.
    CatchUp { not_before: DateTime<Utc> },
}

impl Trigger {
    /// A success at or after this moment means the run is already done (by another daemon).
    fn not_before(self) -> DateTime<Utc> {
        match self {
            Trigger::Scheduled { due } => due,
            Trigger::CatchUp { not_before } => not_before,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Trigger::Scheduled { .. } => "schedule",
            Trigger::CatchUp { .. } => "catch-up",
        }
    }
}

enum JobResult {
    Done(String),
    Skipped(String),
    /// The job label the failure counts under ("verify" when the backup's verification
    /// failed) and the error.
    Failed(&'static str, String),
    Cancelled,
}
