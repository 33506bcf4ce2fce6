//! A named point in the change stream (`<db>/capture/marks/<name>.json`), format 1. Written
//! before its `pgdr.mark` message (so the runner can tell the message is pgdr's own), then
//! again with the message's LSN: a mark without an LSN is not a point one can restore to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::source::Lsn;

pub const MARK_FORMAT: u32 = 1;

/// The logical message prefix of a mark; its content is the mark's name.
pub const MARK_PREFIX: &str = "pgdr.mark";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMark {
    pub format_version: u32,
    pub database: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The mark message's LSN (None: written, message not yet confirmed).
    pub lsn: Option<Lsn>,
    pub host: String,
}
