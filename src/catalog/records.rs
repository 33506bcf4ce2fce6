//! Records of what was done with backups: verifications and restores; drills beside them.
//! Stored in the repository (not on the host that ran them), so history survives that host.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::BackupId;
use super::manifest::Phase;

pub const RECORD_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// Objects, checksums, decryption, archive parse and data digests; no database.
    Quick,
    /// Quick, then a restore into a scratch database and a fingerprint comparison.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Proven: everything matched.
    Passed,
    /// Ran to the end and found differences: the backup is not what its manifest says.
    Failed,
    /// Could not run to the end (no key, scratch server problem): says nothing of the backup.
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationRecord {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    pub backup_id: BackupId,
    pub mode: VerifyMode,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub phases: Vec<Phase>,
    /// One line per difference, in operator words.
    pub differences: Vec<String>,
    /// Why it could not run, for `Outcome::Error`.
    pub error: Option<String>,
    /// Where the restore went (server version, ephemeral or named server), for full mode.
    pub scratch: Option<String>,
    pub host: String,
}

/// File name of a record: its start time, sortable.
pub fn record_file(t: DateTime<Utc>) -> String {
    format!("{}.json", t.format("%Y%m%dT%H%M%S%.3fZ"))
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// How a restore treated the target database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// The target database did not exist: created.
    Create,
    /// It existed without user tables: dropped and created again.
    ReplaceEmpty,
    /// `--clean`: dropped and created again.
    Clean,
    /// `--swap`: restored beside it, verified, then renamed into place.
    Swap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreOutcome {
    /// Restored, and the fingerprint comparison found no difference.
    Restored,
    /// Restored with `--no-verify`: nothing proven.
    RestoredUnverified,
    /// Restored, but the restored database differs from the backup's fingerprint.
    Differences,
    /// Could not finish; `error` says why.
    Failed,
    /// Stopped by a signal.
    Interrupted,
}

/// One real restore (`pgdr restore`), stored at `<database>/restores/<start>.json`, so the
/// RTOs of drills can be compared with real ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestoreRecord {
    pub format_version: u32,
    pub pgdr_version: String,
    /// The repository name of the database the backup belongs to.
    pub database: String,
    pub backup_id: BackupId,
    /// The data-loss point: what the restored database contains is as of this moment.
    pub snapshot_time: DateTime<Utc>,
    /// `user@host:port/dbname`, never the password.
    pub target: String,
    pub mode: RestoreMode,
    /// pg_restore jobs; 1 = streamed without a spool.
    pub jobs: u32,
    pub outcome: RestoreOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub phases: Vec<Phase>,
    /// Wall time of the whole restore: the real RTO.
    pub total_seconds: f64,
    /// `finished_at - snapshot_time`: changes made in this window are not in the restore.
    pub rpo_seconds: f64,
    pub differences: Vec<String>,
    pub error: Option<String>,
    /// For `--swap`: the name the previous database was kept under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_kept_as: Option<String>,
    #[serde(default)]
    pub roles_created: Vec<String>,
    #[serde(default)]
    pub roles_kept: Vec<String>,
    pub host: String,
}
