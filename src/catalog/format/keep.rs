//! Keep rules: the manifest's optional `keep` (set by `pgdr backup --keep-for/--keep-forever`)
//! and the keep record (`<db>/<id>/keep/<time>.json`, format 1) that `pgdr keep` writes beside
//! a manifest to change the rule without rewriting the manifest (its checksum, and later its
//! signature, cover the bytes as the backup wrote them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::id::BackupId;

pub const KEEP_FORMAT: u32 = 1;

/// `"forever"` or `{"until": "<rfc3339>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredKeepRule {
    Forever,
    Until(DateTime<Utc>),
}

/// A keep record's rule: a keep rule, or `"released"` (the backup is retention's again, even
/// if its manifest asked to keep it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredKeepChange {
    Forever,
    Until(DateTime<Utc>),
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKeepRecord {
    pub format_version: u32,
    pub database: String,
    pub backup_id: BackupId,
    pub written_at: DateTime<Utc>,
    pub keep: StoredKeepChange,
    pub host: String,
}
