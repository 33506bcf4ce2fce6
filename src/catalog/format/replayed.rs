//! What a point-in-time restore replayed, inside its restore record (`replay`, absent for a
//! restore of a dump alone). Part of restore record format 1: optional, older readers of the
//! record ignore nothing they need.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::segments::StoredCommit;
use crate::source::Lsn;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReplayed {
    /// The point asked for, as the operator named it (`mark pre-migration`, `time ...`).
    pub point: String,
    /// The anchor's cut: the dump holds every transaction committed before it.
    pub anchor_cut_lsn: Lsn,
    /// Start LSNs of the segments read.
    pub segments: Vec<Lsn>,
    /// The last transaction applied (None: nothing after the cut up to the point).
    pub last_commit: Option<StoredCommit>,
    /// Seconds between the last applied commit (or the anchor) and the point asked, for a time.
    pub distance_seconds: Option<f64>,
    /// WAL bytes between the last applied commit and the point asked, for an LSN or a mark.
    pub distance_bytes: Option<u64>,
    pub transactions: u64,
    pub rows: u64,
    pub replay_seconds: f64,
    /// How sequences were set: from a sample, or from the owned columns.
    pub sequences: String,
    /// Per table after the replay: rows and digest (the digests `verify` records).
    pub tables: Vec<StoredTableState>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTableState {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    pub digest: String,
}
