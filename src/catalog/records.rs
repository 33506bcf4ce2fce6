//! Records of what was done with backups: verifications now; drills and restores beside them.
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
