//! The scheduler's objects: job state (`<database>/jobs/<job>.json`, format 1) and leases
//! (`<database>/jobs/<job>.lease`, unversioned). Their runtime types live in `schedule` (job
//! state) and the daemon (lease), which convert to and from these; catalog does not depend on
//! them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The format of job state written today.
pub const JOB_STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredJobKind {
    Backup,
    Drill,
    Prune,
    /// Named as its config key, `[schedule] chain_proof`.
    #[serde(rename = "chain_proof")]
    ChainProof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredRunOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJobRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: StoredRunOutcome,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJobState {
    pub format_version: u32,
    pub database: String,
    pub job: StoredJobKind,
    pub last_run: Option<StoredJobRun>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLease {
    pub owner: String,
    pub host: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
