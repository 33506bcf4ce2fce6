//! Records of what was done with backups (format 1): verifications
//! (`<database>/<backup-id>/verifications/<start>.json`), drills (`<database>/drills/<start>.json`)
//! and restores (`<database>/restores/<start>.json`), mirroring `catalog::records`. Written
//! with `serde_json::to_vec_pretty`, so field order here is byte order there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::manifest::StoredPhase;
use super::{mirror_enum, via_stored};
use crate::catalog::id::BackupId;
use crate::catalog::records::{
    CheckResult, DrillBackup, DrillRecord, DrillTargets, Outcome, RestoreMode, RestoreOutcome,
    RestoreRecord, VerificationRecord, VerifyMode, WorstRpo,
};

/// The format of every record written today.
pub const RECORD_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredVerifyMode {
    Quick,
    Full,
    Chain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredOutcome {
    Passed,
    Failed,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredRestoreMode {
    Create,
    ReplaceEmpty,
    Clean,
    Swap,
    IntoExisting,
    Tables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredRestoreOutcome {
    Restored,
    RestoredUnverified,
    Differences,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredVerification {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    pub backup_id: BackupId,
    pub mode: StoredVerifyMode,
    pub outcome: StoredOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub phases: Vec<StoredPhase>,
    pub differences: Vec<String>,
    pub error: Option<String>,
    pub scratch: Option<String>,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_signature: Option<super::signature::BackupSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredRestore {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    pub backup_id: BackupId,
    pub snapshot_time: DateTime<Utc>,
    pub target: String,
    pub mode: StoredRestoreMode,
    pub jobs: u32,
    pub outcome: StoredRestoreOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub phases: Vec<StoredPhase>,
    pub total_seconds: f64,
    pub rpo_seconds: f64,
    pub differences: Vec<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_kept_as: Option<String>,
    #[serde(default)]
    pub roles_created: Vec<String>,
    #[serde(default)]
    pub roles_kept: Vec<String>,
    /// On a managed target: every decision, skip and change (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed: Vec<String>,
    pub host: String,
    /// A point-in-time restore: what was replayed onto the dump (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<super::replayed::StoredReplayed>,
    /// `pgdr restore --table` (format 2): which tables, where, how (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<super::restored_tables::StoredRestoredTables>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_signature: Option<super::signature::BackupSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDrill {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    pub drill: Option<String>,
    pub outcome: StoredOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub selection: String,
    pub backup: Option<StoredDrillBackup>,
    pub phases: Vec<StoredPhase>,
    pub rto_seconds: Option<f64>,
    pub elapsed_seconds: f64,
    pub rpo_seconds: Option<f64>,
    /// "backup" or "capture" (absent in records older than capture-aware drills: backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_source: Option<String>,
    pub worst_rpo: Option<StoredWorstRpo>,
    pub targets: StoredDrillTargets,
    pub checks: Vec<StoredCheckResult>,
    pub differences: Vec<String>,
    pub failures: Vec<String>,
    pub error: Option<String>,
    pub scratch: Option<String>,
    pub scratch_server_version: Option<String>,
    pub host: String,
    /// A drill of a point (`random_point_within_days`): what was replayed onto the anchor,
    /// the point and the distance of the last applied commit to it (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<super::replayed::StoredReplayed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_signature: Option<super::signature::BackupSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDrillBackup {
    pub id: BackupId,
    pub snapshot_time: DateTime<Utc>,
    pub server_version: String,
    pub dump_bytes: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredWorstRpo {
    pub seconds: f64,
    pub window_days: u32,
    pub from_backup: BackupId,
    pub from: DateTime<Utc>,
    pub to_backup: Option<BackupId>,
    pub to: DateTime<Utc>,
    pub restorable_in_window: usize,
    pub known_bad_in_window: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDrillTargets {
    pub rto_seconds: f64,
    pub rpo_seconds: f64,
    pub rto_from: String,
    pub rpo_from: String,
    pub rto_met: Option<bool>,
    pub rpo_met: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredCheckResult {
    pub name: String,
    pub sql: String,
    pub expect: String,
    pub passed: bool,
    pub rows: Option<u64>,
    pub value: Option<String>,
    pub message: Option<String>,
    pub seconds: f64,
}

mirror_enum!(VerifyMode, StoredVerifyMode, [Quick, Full, Chain]);
mirror_enum!(Outcome, StoredOutcome, [Passed, Failed, Error]);
mirror_enum!(
    RestoreMode,
    StoredRestoreMode,
    [Create, ReplaceEmpty, Clean, Swap, IntoExisting, Tables]
);
mirror_enum!(
    RestoreOutcome,
    StoredRestoreOutcome,
    [
        Restored,
        RestoredUnverified,
        Differences,
        Failed,
        Interrupted
    ]
);
via_stored!(VerifyMode, StoredVerifyMode);
via_stored!(Outcome, StoredOutcome);
via_stored!(RestoreMode, StoredRestoreMode);
via_stored!(RestoreOutcome, StoredRestoreOutcome);
via_stored!(VerificationRecord, StoredVerification);
via_stored!(RestoreRecord, StoredRestore);
via_stored!(DrillRecord, StoredDrill);
via_stored!(DrillBackup, StoredDrillBackup);
via_stored!(WorstRpo, StoredWorstRpo);
via_stored!(DrillTargets, StoredDrillTargets);
via_stored!(CheckResult, StoredCheckResult);

impl From<&VerificationRecord> for StoredVerification {
    fn from(r: &VerificationRecord) -> Self {
        StoredVerification {
            format_version: r.format_version,
            pgdr_version: r.pgdr_version.clone(),
            database: r.database.clone(),
            backup_id: r.backup_id.clone(),
            mode: (&r.mode).into(),
            outcome: (&r.outcome).into(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            phases: r.phases.iter().map(Into::into).collect(),
            differences: r.differences.clone(),
            error: r.error.clone(),
            scratch: r.scratch.clone(),
            host: r.host.clone(),
            backup_signature: r.backup_signature.clone(),
        }
    }
}

impl From<StoredVerification> for VerificationRecord {
    fn from(s: StoredVerification) -> Self {
        VerificationRecord {
            format_version: s.format_version,
            pgdr_version: s.pgdr_version,
            database: s.database,
            backup_id: s.backup_id,
            mode: s.mode.into(),
            outcome: s.outcome.into(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            phases: s.phases.into_iter().map(Into::into).collect(),
            differences: s.differences,
            error: s.error,
            scratch: s.scratch,
            host: s.host,
            backup_signature: s.backup_signature,
        }
    }
}

impl From<&RestoreRecord> for StoredRestore {
    fn from(r: &RestoreRecord) -> Self {
        StoredRestore {
            format_version: r.format_version,
            pgdr_version: r.pgdr_version.clone(),
            database: r.database.clone(),
            backup_id: r.backup_id.clone(),
            snapshot_time: r.snapshot_time,
            target: r.target.clone(),
            mode: (&r.mode).into(),
            jobs: r.jobs,
            outcome: (&r.outcome).into(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            phases: r.phases.iter().map(Into::into).collect(),
            total_seconds: r.total_seconds,
            rpo_seconds: r.rpo_seconds,
            differences: r.differences.clone(),
            error: r.error.clone(),
            previous_kept_as: r.previous_kept_as.clone(),
            roles_created: r.roles_created.clone(),
            roles_kept: r.roles_kept.clone(),
            managed: r.managed.clone(),
            host: r.host.clone(),
            backup_signature: r.backup_signature.clone(),
            replay: r.replay.clone(),
            tables: r.tables.clone(),
        }
    }
}

impl From<StoredRestore> for RestoreRecord {
    fn from(s: StoredRestore) -> Self {
        RestoreRecord {
            format_version: s.format_version,
            pgdr_version: s.pgdr_version,
            database: s.database,
            backup_id: s.backup_id,
            snapshot_time: s.snapshot_time,
            target: s.target,
            mode: s.mode.into(),
            jobs: s.jobs,
            outcome: s.outcome.into(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            phases: s.phases.into_iter().map(Into::into).collect(),
            total_seconds: s.total_seconds,
            rpo_seconds: s.rpo_seconds,
            differences: s.differences,
            error: s.error,
            previous_kept_as: s.previous_kept_as,
            roles_created: s.roles_created,
            roles_kept: s.roles_kept,
            managed: s.managed,
            host: s.host,
            backup_signature: s.backup_signature,
            replay: s.replay,
            tables: s.tables,
        }
    }
}

impl From<&DrillRecord> for StoredDrill {
    fn from(r: &DrillRecord) -> Self {
        StoredDrill {
            format_version: r.format_version,
            pgdr_version: r.pgdr_version.clone(),
            database: r.database.clone(),
            drill: r.drill.clone(),
            outcome: (&r.outcome).into(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            selection: r.selection.clone(),
            backup: r.backup.as_ref().map(Into::into),
            phases: r.phases.iter().map(Into::into).collect(),
            rto_seconds: r.rto_seconds,
            elapsed_seconds: r.elapsed_seconds,
            rpo_seconds: r.rpo_seconds,
            rpo_source: r.rpo_source.clone(),
            worst_rpo: r.worst_rpo.as_ref().map(Into::into),
            targets: (&r.targets).into(),
            checks: r.checks.iter().map(Into::into).collect(),
            differences: r.differences.clone(),
            failures: r.failures.clone(),
            error: r.error.clone(),
            scratch: r.scratch.clone(),
            scratch_server_version: r.scratch_server_version.clone(),
            host: r.host.clone(),
            replay: r.replay.clone(),
            backup_signature: r.backup_signature.clone(),
        }
    }
}

impl From<StoredDrill> for DrillRecord {
    fn from(s: StoredDrill) -> Self {
        DrillRecord {
            format_version: s.format_version,
            pgdr_version: s.pgdr_version,
            database: s.database,
            drill: s.drill,
            outcome: s.outcome.into(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            selection: s.selection,
            backup: s.backup.map(Into::into),
            phases: s.phases.into_iter().map(Into::into).collect(),
            rto_seconds: s.rto_seconds,
            elapsed_seconds: s.elapsed_seconds,
            rpo_seconds: s.rpo_seconds,
            rpo_source: s.rpo_source,
            worst_rpo: s.worst_rpo.map(Into::into),
            targets: s.targets.into(),
            checks: s.checks.into_iter().map(Into::into).collect(),
            differences: s.differences,
            failures: s.failures,
            error: s.error,
            scratch: s.scratch,
            scratch_server_version: s.scratch_server_version,
            host: s.host,
            replay: s.replay,
            backup_signature: s.backup_signature,
        }
    }
}

impl From<&DrillBackup> for StoredDrillBackup {
    fn from(r: &DrillBackup) -> Self {
        StoredDrillBackup {
            id: r.id.clone(),
            snapshot_time: r.snapshot_time,
            server_version: r.server_version.clone(),
            dump_bytes: r.dump_bytes,
            stored_bytes: r.stored_bytes,
        }
    }
}

impl From<StoredDrillBackup> for DrillBackup {
    fn from(s: StoredDrillBackup) -> Self {
        DrillBackup {
            id: s.id,
            snapshot_time: s.snapshot_time,
            server_version: s.server_version,
            dump_bytes: s.dump_bytes,
            stored_bytes: s.stored_bytes,
        }
    }
}

impl From<&WorstRpo> for StoredWorstRpo {
    fn from(r: &WorstRpo) -> Self {
        StoredWorstRpo {
            seconds: r.seconds,
            window_days: r.window_days,
            from_backup: r.from_backup.clone(),
            from: r.from,
            to_backup: r.to_backup.clone(),
            to: r.to,
            restorable_in_window: r.restorable_in_window,
            known_bad_in_window: r.known_bad_in_window,
        }
    }
}

impl From<StoredWorstRpo> for WorstRpo {
    fn from(s: StoredWorstRpo) -> Self {
        WorstRpo {
            seconds: s.seconds,
            window_days: s.window_days,
            from_backup: s.from_backup,
            from: s.from,
            to_backup: s.to_backup,
            to: s.to,
            restorable_in_window: s.restorable_in_window,
            known_bad_in_window: s.known_bad_in_window,
        }
    }
}

impl From<&DrillTargets> for StoredDrillTargets {
    fn from(r: &DrillTargets) -> Self {
        StoredDrillTargets {
            rto_seconds: r.rto_seconds,
            rpo_seconds: r.rpo_seconds,
            rto_from: r.rto_from.clone(),
            rpo_from: r.rpo_from.clone(),
            rto_met: r.rto_met,
            rpo_met: r.rpo_met,
        }
    }
}

impl From<StoredDrillTargets> for DrillTargets {
    fn from(s: StoredDrillTargets) -> Self {
        DrillTargets {
            rto_seconds: s.rto_seconds,
            rpo_seconds: s.rpo_seconds,
            rto_from: s.rto_from,
            rpo_from: s.rpo_from,
            rto_met: s.rto_met,
            rpo_met: s.rpo_met,
        }
    }
}

impl From<&CheckResult> for StoredCheckResult {
    fn from(r: &CheckResult) -> Self {
        StoredCheckResult {
            name: r.name.clone(),
            sql: r.sql.clone(),
            expect: r.expect.clone(),
            passed: r.passed,
            rows: r.rows,
            value: r.value.clone(),
            message: r.message.clone(),
            seconds: r.seconds,
        }
    }
}

impl From<StoredCheckResult> for CheckResult {
    fn from(s: StoredCheckResult) -> Self {
        CheckResult {
            name: s.name,
            sql: s.sql,
            expect: s.expect,
            passed: s.passed,
            rows: s.rows,
            value: s.value,
            message: s.message,
            seconds: s.seconds,
        }
    }
}
