//! Records of what was done with backups: verifications and restores; drills beside them.
//! Stored in the repository (not on the host that ran them), so history survives that host.
//! Their JSON is [`format::records`](super::format::records), converted from these types.

use chrono::{DateTime, Utc};

use super::id::BackupId;
use super::manifest::Phase;

pub const RECORD_FORMAT_VERSION: u32 = super::format::records::RECORD_FORMAT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Objects, checksums, decryption, archive parse and data digests; no database.
    Quick,
    /// Quick, then a restore into a scratch database and a fingerprint comparison.
    Full,
    /// The chain proof (`pgdr capture prove-chain`): the previous anchored backup restored and
    /// the stored changes replayed to this backup's cut, compared with its fingerprint.
    Chain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Proven: everything matched.
    Passed,
    /// Ran to the end and found differences: the backup is not what its manifest says.
    Failed,
    /// Could not run to the end (no key, scratch server problem): says nothing of the backup.
    Error,
}

#[derive(Debug, Clone, PartialEq)]
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
    /// How the backup read was accepted: signed by a trusted key, or let through unsigned.
    pub backup_signature: Option<crate::catalog::format::signature::BackupSignature>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// The target database did not exist: created.
    Create,
    /// It existed without user tables: dropped and created again.
    ReplaceEmpty,
    /// `--clean`: dropped and created again.
    Clean,
    /// `--swap`: restored beside it, verified, then renamed into place.
    Swap,
    /// A managed target (no SUPERUSER): restored into the existing database, which is never
    /// dropped or renamed (platform schemas kept, application schemas created).
    IntoExisting,
    /// `pgdr restore --table`: selected tables into the live database (`tables` says which).
    Tables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
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
    pub previous_kept_as: Option<String>,
    pub roles_created: Vec<String>,
    pub roles_kept: Vec<String>,
    /// On a managed target: every decision, skip and change.
    pub managed: Vec<String>,
    pub host: String,
    /// A point-in-time restore: the anchor, segments, last commit and tables after the replay.
    pub replay: Option<crate::catalog::format::replayed::StoredReplayed>,
    /// A table restore: the tables, into a schema or in place, cascaded foreign keys.
    pub tables: Option<crate::catalog::format::restored_tables::StoredRestoredTables>,
    /// How the backup read was accepted: signed by a trusted key, or let through unsigned.
    pub backup_signature: Option<crate::catalog::format::signature::BackupSignature>,
}

/// One recovery drill (`pgdr drill`), stored at `<database>/drills/<start>.json`: a timed
/// rehearsal of an emergency restore into a scratch database, with its RTO and RPO.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillRecord {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    /// The drill definition's name (its file stem, or `name` in it); None without one.
    pub drill: Option<String>,
    /// Passed: restored, fingerprint equal, smoke checks and both targets met. Failed: any of
    /// those not (including: no backup to restore). Error: could not run (scratch server).
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// How the backup was chosen: "newest", "given", "random within 30 days".
    pub selection: String,
    /// The backup restored; None when there was none to restore.
    pub backup: Option<DrillBackup>,
    /// Seconds per phase, in order, back to back from the drill's start.
    pub phases: Vec<Phase>,
    /// Drill start to "restored, fingerprint equal, smoke checks passed" (the phases before
    /// `teardown`); None when it never got there.
    pub rto_seconds: Option<f64>,
    /// Drill start to the end of the checks, whether they passed or not.
    pub elapsed_seconds: f64,
    /// Drill start minus the snapshot time of the backup restored; with capture on, the data
    /// at risk at the drill's start (the time since the newest point durable in the
    /// repository), as `status` reports it.
    pub rpo_seconds: Option<f64>,
    /// What `rpo_seconds` is measured from: "backup" or "capture"; None in records written
    /// before drills knew capture (those are "backup").
    pub rpo_source: Option<String>,
    /// The worst data loss a failure in the last days would have caused.
    pub worst_rpo: Option<WorstRpo>,
    pub targets: DrillTargets,
    pub checks: Vec<CheckResult>,
    /// Fingerprint differences between the backup and the restored copy.
    pub differences: Vec<String>,
    /// Every reason the drill did not pass, in operator words.
    pub failures: Vec<String>,
    /// Why it could not run, for `Outcome::Error`.
    pub error: Option<String>,
    /// Where the restore went.
    pub scratch: Option<String>,
    /// `server_version` of the scratch server restored into.
    pub scratch_server_version: Option<String>,
    pub host: String,
    /// A drill of a point: what was replayed, the point, the distance to it.
    pub replay: Option<crate::catalog::format::replayed::StoredReplayed>,
    /// How the backup read was accepted: signed by a trusted key, or let through unsigned.
    pub backup_signature: Option<crate::catalog::format::signature::BackupSignature>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrillBackup {
    pub id: BackupId,
    pub snapshot_time: DateTime<Utc>,
    /// The source server's version when the backup was made.
    pub server_version: String,
    /// Size of the pg_dump archive and of everything stored.
    pub dump_bytes: u64,
    pub stored_bytes: u64,
}

/// The largest gap a failure could have fallen into: between two consecutive restorable
/// backups (the later one inside the window), or from the newest one to the drill.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstRpo {
    pub seconds: f64,
    pub window_days: u32,
    /// The backup before the gap.
    pub from_backup: BackupId,
    pub from: DateTime<Utc>,
    /// The backup after the gap; None: the gap runs to the drill's start.
    pub to_backup: Option<BackupId>,
    pub to: DateTime<Utc>,
    /// Restorable backups with snapshots inside the window.
    pub restorable_in_window: usize,
    /// Backups inside the window left out as known bad (failed verification, unreadable).
    pub known_bad_in_window: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrillTargets {
    pub rto_seconds: f64,
    pub rpo_seconds: f64,
    /// Where each came from: "drill file", "config" or "default".
    pub rto_from: String,
    pub rpo_from: String,
    /// None when there was nothing to measure.
    pub rto_met: Option<bool>,
    pub rpo_met: Option<bool>,
}

/// One smoke check run against the restored database.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub sql: String,
    pub expect: String,
    pub passed: bool,
    /// Rows returned by the last statement that returned rows; None if it did not run.
    pub rows: Option<u64>,
    /// The first column of the first row, as text.
    pub value: Option<String>,
    /// Why it failed (or "not run: ..."), in operator words.
    pub message: Option<String>,
    pub seconds: f64,
}
