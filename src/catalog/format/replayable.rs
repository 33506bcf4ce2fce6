//! A window of the change stream that cannot be replayed
//! (`<db>/capture/not-replayable/<from>.json`, format 1): points from `from` until the anchor
//! `to` are refused by name by the restore. A schema change opens one (DDL is not in the
//! stream, so replaying later changes onto the previous schema would be wrong); the anchored
//! backup taken after it closes it at its `cut_lsn`. Written open (`to` None) the moment the
//! change is seen, so a crash before the anchor leaves the window open, never missing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::source::Lsn;

/// The format written today.
pub const NOT_REPLAYABLE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredNotReplayable {
    pub format_version: u32,
    pub database: String,
    /// The first point that cannot be replayed (the changed transaction's commit LSN).
    pub from: Lsn,
    /// The cut of the anchored backup that makes points replayable again. None when the
    /// capture's own anchor failed (or has not finished): then the window runs to the cut of
    /// the first anchored backup whose cut is at or after `from`, whoever took it.
    pub to: Option<Lsn>,
    pub reason: StoredNotReplayableReason,
    /// What changed, for the person reading the refusal (`schema.table`).
    pub detail: String,
    /// The anchored backup whose cut is `to`.
    pub anchor_backup: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredNotReplayableReason {
    /// A changed Relation message arrived: the table's definition changed.
    SchemaChange,
}
