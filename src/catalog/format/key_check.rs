//! Key-check records (format 1): `<db>/key-checks/<start>.json`, written by
//! `pgdr drill --key-check`. Per identity file given: whether it alone opened the database's
//! newest backup (quick verify), and which of the backup's recipients that proved. The
//! identity is named by its file path and public keys, never by its content. `status` reads
//! them to say which recipients have not been proven lately.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::StoredOutcome;
use crate::catalog::id::BackupId;

pub const KEY_CHECK_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKeyCheck {
    pub format_version: u32,
    pub pgdr_version: String,
    pub database: String,
    /// The backup proven (the newest); absent when the database has none.
    pub backup_id: Option<BackupId>,
    /// Passed only when every identity passed.
    pub outcome: StoredOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub identities: Vec<StoredIdentityProof>,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredIdentityProof {
    /// The identity file as given (`--identity`).
    pub file: String,
    /// Its public keys (empty when it could not be read).
    pub public_keys: Vec<String>,
    pub outcome: StoredOutcome,
    /// The backup's recipients this identity proved (its public keys among them), when passed.
    pub recipients_proved: Vec<String>,
    /// Differences or the error, one line each, when not passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}
