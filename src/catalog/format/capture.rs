//! The change capture's state (`<database>/capture/state.json`, format 1): what `pgdr capture
//! enable` set up on the server, so any host with the repository knows it (a `pgdr backup`
//! anchors itself when it is enabled; a runner on a fresh host finds slot and publication).
//! Used as is by `capture::setup`: it holds no runtime type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::source::Lsn;

/// The format written today.
pub const CAPTURE_STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureStatus {
    Enabled,
    /// `pgdr capture disable` dropped slot and publication; the state stays as the record.
    Disabled,
}

/// A table the capture leaves out, and the statement that would include it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// `schema.table`, quoted where SQL needs it.
    pub table: String,
    pub reason: String,
    /// The exact statement to run (then `pgdr capture enable` again); None where none exists.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureState {
    pub format_version: u32,
    pub database: String,
    pub status: CaptureStatus,
    /// The persistent pgoutput slot, `pgdr_<database>`.
    pub slot: String,
    /// The publication, `pgdr_<database>` (`FOR TABLE` list, `publish_via_partition_root`).
    pub publication: String,
    /// The tables in the publication, `schema.table` (quoted where SQL needs it), sorted.
    pub tables: Vec<String>,
    pub left_out: Vec<LeftOut>,
    /// What a capture never holds (DDL, sequences, large objects, ...), said once here.
    pub not_captured: Vec<String>,
    pub system_identifier: String,
    pub timeline: u32,
    pub server_version_num: i32,
    pub enabled_at: DateTime<Utc>,
    /// The slot's consistent point: the stream starts here.
    pub start_lsn: Lsn,
    /// How long a backup waits for its anchor slot before it goes on unanchored.
    pub anchor_timeout_seconds: u64,
    pub disabled_at: Option<DateTime<Utc>>,
    /// New tables with a replica identity are added to the publication by the runner
    /// (`capture enable --auto-add`, `auto_add = true`); absent (false) in older files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_add: bool,
}

impl CaptureState {
    pub fn enabled(&self) -> bool {
        self.status == CaptureStatus::Enabled
    }
}
